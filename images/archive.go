package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// archive is a folder of image files: an OCI image layout directory, or a tarball
// (docker save, legacy or OCI form) read in place through an index of its entries.
type archive interface {
	openFile(name string) (io.ReadCloser, int64, error) // name is clean and relative
	has(name string) bool
}

// dirArchive is an OCI image layout directory.
type dirArchive string

func (d dirArchive) openFile(name string) (io.ReadCloser, int64, error) {
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: not a regular file", name)
	}
	return f, fi.Size(), nil
}

func (d dirArchive) has(name string) bool {
	_, err := os.Stat(filepath.Join(string(d), filepath.FromSlash(name)))
	return err == nil
}

// tarArchive reads members of an uncompressed tarball by their offsets.
type tarArchive struct {
	f       *os.File
	entries map[string]section
}

type section struct{ off, size int64 }

const maxArchiveEntries = 1 << 20

// openTarArchive indexes the regular files of an uncompressed tarball.
func openTarArchive(f *os.File) (*tarArchive, error) {
	a := &tarArchive{f: f, entries: map[string]section{}}
	pr := &posReader{f: f}
	tr := tar.NewReader(pr)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: tar entry %d: %v", ErrInvalid, n, err)
		}
		if n >= maxArchiveEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrInvalid, maxArchiveEntries)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue // folders, and links (docker save links identical layers): unused
		}
		if hdr.Size < 0 {
			return nil, fmt.Errorf("%w: entry %q: size %d", ErrInvalid, hdr.Name, hdr.Size)
		}
		a.entries[name] = section{off: pr.pos, size: hdr.Size}
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	for name, s := range a.entries {
		if s.off+s.size > fi.Size() || s.off+s.size < s.off {
			return nil, fmt.Errorf("%w: entry %q: truncated", ErrInvalid, name)
		}
	}
	return a, nil
}

func (a *tarArchive) openFile(name string) (io.ReadCloser, int64, error) {
	s, ok := a.entries[name]
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(a.f, s.off, s.size)), s.size, nil
}

func (a *tarArchive) has(name string) bool { _, ok := a.entries[name]; return ok }

// posReader tracks the offset in the file as archive/tar reads and seeks it, so that a
// member's data offset is known right after Next.
type posReader struct {
	f   *os.File
	pos int64
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.f.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

// readSmall reads a whole archive member of at most max bytes.
func readSmall(a archive, name string, max int64) ([]byte, error) {
	rc, size, err := a.openFile(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > max {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than %d", ErrInvalid, name, size, max)
	}
	return io.ReadAll(io.LimitReader(rc, max))
}

func blobName(d digest.Digest) string { return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded() }

// archiveSource serves an image's blobs from an archive: by the paths docker save's
// manifest.json gave, else from blobs/ALG/HEX.
type archiveSource struct {
	a     archive
	paths map[digest.Digest]string
}

func (s *archiveSource) open(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if err := checkDigest(d.Digest); err != nil {
		return nil, err
	}
	p, ok := s.paths[d.Digest]
	if !ok {
		p = blobName(d.Digest)
	}
	rc, _, err := s.a.openFile(p)
	return rc, err
}

// dockerManifest is one entry of docker save's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// candidates lists the images an archive holds.
func candidates(ctx context.Context, a archive, what string) ([]candidate, error) {
	if a.has("manifest.json") {
		return dockerCandidates(a, what)
	}
	if a.has("index.json") {
		return ociCandidates(ctx, a, what)
	}
	return nil, fmt.Errorf("%s is neither a docker save tarball nor an OCI image layout: it has no manifest.json or index.json", what)
}

func dockerCandidates(a archive, what string) ([]candidate, error) {
	b, err := readSmall(a, "manifest.json", maxIndex)
	if err != nil {
		return nil, fmt.Errorf("%s: manifest.json: %w", what, err)
	}
	var ms []dockerManifest
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("%w: %s: manifest.json: %v", ErrInvalid, what, err)
	}
	var out []candidate
	for i, m := range ms {
		c, err := dockerCandidate(a, m)
		if err != nil {
			return nil, fmt.Errorf("%s: image %d (%s): %w", what, i, strings.Join(m.RepoTags, ", "), err)
		}
		out = append(out, c)
	}
	return out, nil
}

func dockerCandidate(a archive, m dockerManifest) (candidate, error) {
	src := &archiveSource{a: a, paths: map[digest.Digest]string{}}
	cfgName, err := cleanName(m.Config)
	if err != nil {
		return candidate{}, fmt.Errorf("config %q: %w", m.Config, err)
	}
	cfg, err := readSmall(a, cfgName, maxConfig)
	if err != nil {
		return candidate{}, fmt.Errorf("config: %w", err)
	}
	if err := nameMatches(cfgName, digest.FromBytes(cfg)); err != nil {
		return candidate{}, fmt.Errorf("config: %w", err)
	}
	src.paths[digest.FromBytes(cfg)] = cfgName
	var layers []ocispec.Descriptor
	for _, l := range m.Layers {
		name, err := cleanName(l)
		if err != nil {
			return candidate{}, fmt.Errorf("layer %q: %w", l, err)
		}
		d, err := describe(a, name)
		if err != nil {
			return candidate{}, fmt.Errorf("layer %q: %w", l, err)
		}
		src.paths[d.Digest] = name
		layers = append(layers, d)
	}
	mb, err := synthManifest(cfg, layers)
	if err != nil {
		return candidate{}, err
	}
	c := candidate{manifest: mb, src: src}
	for _, t := range m.RepoTags {
		n, err := normalizeName(t)
		if err != nil {
			return candidate{}, err
		}
		c.names = append(c.names, n)
	}
	c.what = strings.Join(c.names, ", ")
	return c, nil
}

// nameMatches checks a member named after a digest (blobs/sha256/HEX, HEX.json) against
// the digest of its content.
func nameMatches(name string, d digest.Digest) error {
	base := strings.TrimSuffix(path.Base(name), ".json")
	if len(base) == 64 && strings.Trim(base, "0123456789abcdef") == "" && base != d.Encoded() {
		return fmt.Errorf("%w: %s has digest %s", ErrInvalid, name, d)
	}
	return nil
}

// describe digests an archive member to make a layer descriptor for it.
func describe(a archive, name string) (ocispec.Descriptor, error) {
	rc, size, err := a.openFile(name)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer rc.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(rc, head)
	dg := digest.SHA256.Digester()
	dg.Hash().Write(head[:n])
	if _, err := io.Copy(dg.Hash(), rc); err != nil {
		return ocispec.Descriptor{}, err
	}
	d := ocispec.Descriptor{MediaType: mediaTypeOf(head[:n]), Digest: dg.Digest(), Size: size}
	if err := nameMatches(name, d.Digest); err != nil {
		return ocispec.Descriptor{}, err
	}
	return d, nil
}

func ociCandidates(ctx context.Context, a archive, what string) ([]candidate, error) {
	b, err := readSmall(a, "index.json", maxIndex)
	if err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", what, err)
	}
	var ix ocispec.Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("%w: %s: index.json: %v", ErrInvalid, what, err)
	}
	src := &archiveSource{a: a}
	var out []candidate
	for i, d := range ix.Manifests {
		if d.Platform != nil && (d.Platform.OS != "linux" || d.Platform.Architecture != "amd64") {
			continue // another platform's image (or an attestation) beside the amd64 one
		}
		c, err := ociCandidate(ctx, src, d, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: index entry %d (%s): %w", what, i, d.Digest, err)
		}
		for _, k := range []string{"io.containerd.image.name", ocispec.AnnotationRefName} {
			v := d.Annotations[k]
			if v == "" {
				continue
			}
			if n, err := normalizeName(v); err == nil && strings.ContainsAny(v, ":/") {
				c.names = []string{n}
				break
			}
		}
		c.what = strings.Join(c.names, ", ")
		if c.what == "" {
			c.what = short(c.want)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no linux/amd64 image in index.json", what)
	}
	return out, nil
}

// ociCandidate resolves an index entry to an image manifest, choosing linux/amd64 in a
// multi-platform index.
func ociCandidate(ctx context.Context, src *archiveSource, d ocispec.Descriptor, depth int) (candidate, error) {
	if depth > 4 {
		return candidate{}, fmt.Errorf("%w: indexes nested too deep", ErrInvalid)
	}
	b, err := readVerified(ctx, src, d, maxManifest)
	if err != nil {
		return candidate{}, err
	}
	var probe struct {
		MediaType string               `json:"mediaType"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return candidate{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if probe.MediaType == ocispec.MediaTypeImageIndex || probe.MediaType == mediaDockerList || probe.Manifests != nil {
		sel, err := pickPlatform(probe.Manifests)
		if err != nil {
			return candidate{}, err
		}
		return ociCandidate(ctx, src, sel, depth+1)
	}
	return candidate{manifest: b, want: d.Digest, src: src}, nil
}

// pickPlatform chooses the linux/amd64 manifest of an index.
func pickPlatform(ms []ocispec.Descriptor) (ocispec.Descriptor, error) {
	var have []string
	for _, m := range ms {
		if m.Platform == nil {
			continue
		}
		if m.Platform.OS == "linux" && m.Platform.Architecture == "amd64" {
			return m, nil
		}
		have = append(have, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if len(ms) == 1 && ms[0].Platform == nil {
		return ms[0], nil
	}
	slices.Sort(have)
	return ocispec.Descriptor{}, fmt.Errorf("no linux/amd64 image in the index (it has %s)", strings.Join(slices.Compact(have), ", "))
}
