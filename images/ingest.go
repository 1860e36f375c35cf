package images

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Size limits on image metadata, which is read whole into memory.
const (
	maxManifest = 4 << 20
	maxConfig   = 8 << 20
	maxIndex    = 4 << 20
)

// Docker's media types, which registries and docker save still use alongside OCI's.
const (
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaDockerConfig   = "application/vnd.docker.container.image.v1+json"
)

// ErrInvalid is wrapped by every refusal of image content: digests that do not match,
// layer tarballs that try to escape, truncated or corrupt data.
var ErrInvalid = errors.New("invalid image content")

// parseManifest parses an OCI or Docker schema 2 image manifest (image-spec manifest.md).
func parseManifest(b []byte) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
	}
	switch m.MediaType {
	case "", ocispec.MediaTypeImageManifest, mediaDockerManifest:
	case ocispec.MediaTypeImageIndex, mediaDockerList:
		return nil, fmt.Errorf("%w: manifest is an index, not an image manifest", ErrInvalid)
	default:
		return nil, fmt.Errorf("%w: manifest media type %q is not an image manifest", ErrInvalid, m.MediaType)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: manifest schema version %d (only 2 is supported)", ErrInvalid, m.SchemaVersion)
	}
	if err := checkDigest(m.Config.Digest); err != nil {
		return nil, fmt.Errorf("%w: manifest config: %v", ErrInvalid, err)
	}
	if m.Config.Size < 0 || m.Config.Size > maxConfig {
		return nil, fmt.Errorf("%w: manifest config size %d", ErrInvalid, m.Config.Size)
	}
	for i, l := range m.Layers {
		if err := checkDigest(l.Digest); err != nil {
			return nil, fmt.Errorf("%w: manifest layer %d: %v", ErrInvalid, i, err)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("%w: manifest layer %d: size %d", ErrInvalid, i, l.Size)
		}
	}
	return &m, nil
}

// source gives the blobs of one image being brought into the store.
type source interface {
	open(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error)
}

// candidate is one image a source offers.
type candidate struct {
	what     string        // for messages: a name or a file
	manifest []byte        // raw image manifest
	want     digest.Digest // the manifest digest the source promised, or ""
	names    []string      // names to give it, stored form
	src      source
}

// ingest verifies a candidate's every blob against the manifest and the config, converts
// each new layer into a layer disk, and only then registers the image: a refusal leaves
// the index untouched.
func (s *Store) ingest(ctx context.Context, c candidate) (*Image, error) {
	md := digest.FromBytes(c.manifest)
	if c.want != "" && md != c.want {
		return nil, fmt.Errorf("%w: manifest digest is %s, expected %s", ErrInvalid, md, c.want)
	}
	m, err := parseManifest(c.manifest)
	if err != nil {
		return nil, err
	}
	cb, err := readVerified(ctx, c.src, m.Config, maxConfig)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("%w: config %s: %v", ErrInvalid, m.Config.Digest, err)
	}
	if cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("%w: config rootfs type %q, want \"layers\"", ErrInvalid, cfg.RootFS.Type)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: manifest has %d layers but config lists %d diffIDs", ErrInvalid, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, d := range cfg.RootFS.DiffIDs {
		if err := checkDigest(d); err != nil {
			return nil, fmt.Errorf("%w: config diffID %d: %v", ErrInvalid, i, err)
		}
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return nil, fmt.Errorf("image is for %s, hull runs linux images", cfg.OS)
	}
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	tmp, done, err := s.tempDir()
	if err != nil {
		return nil, err
	}
	defer done()

	type staged struct{ blob, disk string }
	stage := make([]staged, len(m.Layers))
	layers := make([]recLayer, len(m.Layers))
	for i, l := range m.Layers {
		diffID := cfg.RootFS.DiffIDs[i]
		layers[i] = recLayer{Digest: l.Digest, DiffID: diffID}
		if size, ok := knownLayer(ix, l.Digest, diffID); ok && s.exists(s.blobPath(l.Digest)) {
			layers[i].Size = size
			continue
		}
		blob := filepath.Join(tmp, fmt.Sprintf("layer-%d", i))
		size, err := s.fetchLayer(ctx, c.src, l, diffID, blob)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, short(l.Digest), err)
		}
		layers[i].Size = size
		stage[i].blob = blob
		if s.exists(s.diskPath(diffID)) {
			continue
		}
		disk := filepath.Join(tmp, fmt.Sprintf("disk-%d", i))
		if err := s.convert(ctx, blob, diffID, size, disk, tmp); err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, short(l.Digest), err)
		}
		stage[i].disk = disk
	}

	unlock, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for i, st := range stage {
		if st.blob == "" && !s.exists(s.blobPath(m.Layers[i].Digest)) {
			// Another image had it when this one started; a prune took it since.
			return nil, fmt.Errorf("layer %s was removed by a concurrent hull rmi or prune: run the command again", short(m.Layers[i].Digest))
		}
		if st.blob != "" && !s.exists(s.blobPath(m.Layers[i].Digest)) {
			if err := os.Rename(st.blob, s.blobPath(m.Layers[i].Digest)); err != nil {
				return nil, fmt.Errorf("store layer %s: %w", m.Layers[i].Digest, err)
			}
		}
		if st.disk != "" && !s.exists(s.diskPath(layers[i].DiffID)) {
			if err := os.Rename(st.disk, s.diskPath(layers[i].DiffID)); err != nil {
				return nil, fmt.Errorf("store layer disk %s: %w", layers[i].DiffID, err)
			}
		}
	}
	for _, b := range []struct {
		d digest.Digest
		b []byte
	}{{m.Config.Digest, cb}, {md, c.manifest}} {
		if s.exists(s.blobPath(b.d)) {
			continue
		}
		if err := writeFileAtomic(s.blobPath(b.d), b.b, 0o600); err != nil {
			return nil, fmt.Errorf("store blob %s: %w", b.d, err)
		}
	}
	for _, d := range []string{filepath.Join(s.dir, "blobs", "sha256"), s.layers} {
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("sync %s: %w", d, err)
		}
	}
	// Reread under the lock: another process may have changed the index meanwhile.
	ix, err = s.readIndex()
	if err != nil {
		return nil, err
	}
	r := record{ID: m.Config.Digest, Manifest: md, Names: c.names, Layers: layers, Loaded: time.Now().UTC()}
	moveNames(ix, r.Names)
	if i := slices.IndexFunc(ix.Images, func(x record) bool { return x.ID == r.ID }); i >= 0 {
		for _, n := range ix.Images[i].Names {
			if !slices.Contains(r.Names, n) {
				r.Names = append(r.Names, n)
			}
		}
		ix.Images[i] = r
	} else {
		ix.Images = append(ix.Images, r)
	}
	if err := s.writeIndexLocked(ix); err != nil {
		return nil, err
	}
	s.log.Info("image stored", "image", r.ID, "names", r.Names, "layers", len(layers))
	return s.image(&r)
}

// moveNames takes names away from every image in ix: a name names one image.
func moveNames(ix *index, names []string) {
	for i := range ix.Images {
		ix.Images[i].Names = slices.DeleteFunc(ix.Images[i].Names, func(n string) bool { return slices.Contains(names, n) })
	}
}

// knownLayer returns the uncompressed size of a layer another image already has.
func knownLayer(ix *index, d, diffID digest.Digest) (int64, bool) {
	for _, r := range ix.Images {
		for _, l := range r.Layers {
			if l.Digest == d && l.DiffID == diffID {
				return l.Size, true
			}
		}
	}
	return 0, false
}

func (s *Store) exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// readVerified reads a small blob whole and checks its size and digest.
func readVerified(ctx context.Context, src source, d ocispec.Descriptor, max int64) ([]byte, error) {
	if d.Size > max {
		return nil, fmt.Errorf("%w: blob %s: size %d exceeds the limit of %d", ErrInvalid, d.Digest, d.Size, max)
	}
	rc, err := src.open(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%w: blob %s: %d bytes, manifest says %d", ErrInvalid, d.Digest, len(b), d.Size)
	}
	if got := digest.FromBytes(b); got != d.Digest {
		return nil, fmt.Errorf("%w: blob %s: content has digest %s", ErrInvalid, d.Digest, got)
	}
	return b, nil
}

// fetchLayer copies a layer blob to path, checking its size and digest and the digest of
// its uncompressed content against diffID. It returns the uncompressed size.
func (s *Store) fetchLayer(ctx context.Context, src source, d ocispec.Descriptor, diffID digest.Digest, path string) (int64, error) {
	rc, err := src.open(ctx, d)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	task := s.progress.Start("layer "+short(d.Digest), d.Size)
	h := sha256.New()
	var n counter
	tee := io.TeeReader(&ctxReader{ctx, io.LimitReader(rc, d.Size+1)}, io.MultiWriter(f, h, &n, task))
	usize, udig, err := uncompressedDigest(tee)
	if err == nil {
		_, err = io.Copy(io.Discard, tee) // trailing bytes still count toward the digest
	}
	task.Done(err)
	if err != nil {
		return 0, err
	}
	if int64(n) != d.Size {
		return 0, fmt.Errorf("%w: blob is %d bytes, manifest says %d", ErrInvalid, n, d.Size)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != d.Digest {
		return 0, fmt.Errorf("%w: blob has digest %s, manifest says %s", ErrInvalid, got, d.Digest)
	}
	if udig != diffID {
		return 0, fmt.Errorf("%w: uncompressed layer has digest %s, config says diffID %s", ErrInvalid, udig, diffID)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return usize, nil
}

// uncompressedDigest reads a layer blob (plain, gzip or zstd tar: told by its first
// bytes, whatever the media type says) and digests its uncompressed content.
func uncompressedDigest(r io.Reader) (int64, digest.Digest, error) {
	u, closeFn, err := decompress(r)
	if err != nil {
		return 0, "", err
	}
	defer closeFn()
	h := sha256.New()
	n, err := io.Copy(h, u)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return n, digest.NewDigest(digest.SHA256, h), nil
}

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress returns the uncompressed stream of a plain, gzip or zstd layer.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %v", ErrInvalid, err)
		}
		return z, func() { z.Close() }, nil
	case bytes.HasPrefix(head, magicZstd):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: zstd: %v", ErrInvalid, err)
		}
		return z, z.Close, nil
	}
	return br, func() {}, nil
}

// mediaTypeOf names the layer media type for a blob by its first bytes.
func mediaTypeOf(head []byte) string {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return ocispec.MediaTypeImageLayerGzip
	case bytes.HasPrefix(head, magicZstd):
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

type counter int64

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

// ctxReader stops a long copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// short is the first 12 hex digits of a digest, as Docker shows IDs.
func short(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// synthManifest builds an OCI image manifest for a config and layers that came without
// one (docker save's legacy form, hull import).
func synthManifest(config []byte, layers []ocispec.Descriptor) ([]byte, error) {
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageConfig,
			Digest:    digest.FromBytes(config),
			Size:      int64(len(config)),
		},
		Layers: layers,
	}
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	return json.Marshal(m)
}
