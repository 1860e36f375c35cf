package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// amd64 is the one platform hull runs.
var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

func remoteOpts(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(amd64),
		remote.WithUserAgent("hull"),
	}
}

// Pull fetches ref from its registry (linux/amd64 from a multi-platform index; gzip,
// zstd or plain layers; credentials from the Docker config file) and stores it under
// its name.
func (s *Store) Pull(ctx context.Context, ref string) (*Image, error) {
	img, err := s.pull(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return img, nil
}

func (s *Store) pull(ctx context.Context, ref string) (*Image, error) {
	r, err := parseRemote(ref)
	if err != nil {
		return nil, err
	}
	ri, err := remote.Image(r, remoteOpts(ctx)...)
	if err != nil {
		return nil, err
	}
	raw, err := ri.RawManifest()
	if err != nil {
		return nil, err
	}
	var names []string
	if t, ok := r.(name.Tag); ok {
		names = []string{familiarRepo(t.Context()) + ":" + t.TagStr()}
	}
	return s.ingest(ctx, candidate{what: ref, manifest: raw, names: names, src: remoteSource{ri}})
}

// remoteSource serves a registry image's blobs; go-containerregistry checks their
// digests too.
type remoteSource struct{ img v1.Image }

func (r remoteSource) open(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	h, err := v1.NewHash(string(d.Digest))
	if err != nil {
		return nil, err
	}
	cn, err := r.img.ConfigName()
	if err != nil {
		return nil, err
	}
	if h == cn {
		b, err := r.img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	l, err := r.img.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

// Push sends the image ref names to its registry, unchanged: the manifest keeps its
// digest. It returns that digest.
func (s *Store) Push(ctx context.Context, ref string) (digest.Digest, error) {
	d, err := s.push(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return d, nil
}

func (s *Store) push(ctx context.Context, ref string) (digest.Digest, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	r, err := parseRemote(ref)
	if err != nil {
		return "", err
	}
	if _, ok := r.(name.Tag); !ok {
		return "", fmt.Errorf("push needs a tag, not a digest: %s", ref)
	}
	core, err := s.core(img)
	if err != nil {
		return "", err
	}
	vi, err := partial.CompressedToImage(core)
	if err != nil {
		return "", err
	}
	var total int64
	for _, l := range img.Layers {
		total += l.Size
	}
	updates := make(chan v1.Update, 16)
	task := s.progress.Start("push "+ref, total)
	drained := make(chan struct{})
	go func() { // remote.Write closes updates when it returns
		defer close(drained)
		var last int64
		for u := range updates {
			if u.Complete > last {
				task.Add(u.Complete - last)
				last = u.Complete
			}
		}
	}()
	err = remote.Write(r, vi, append(remoteOpts(ctx), remote.WithProgress(updates))...)
	<-drained
	task.Done(err)
	if err != nil {
		return "", err
	}
	return img.Manifest, nil
}

// storeCore presents a stored image to go-containerregistry as it is stored.
type storeCore struct {
	s        *Store
	manifest []byte
	config   []byte
	media    types.MediaType
	layers   map[v1.Hash]ocispec.Descriptor
}

func (s *Store) core(img *Image) (*storeCore, error) {
	mb, err := s.readBlob(img.Manifest, maxManifest)
	if err != nil {
		return nil, err
	}
	cb, err := s.readBlob(img.ID, maxConfig)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, err
	}
	c := &storeCore{s: s, manifest: mb, config: cb, media: types.MediaType(m.MediaType), layers: map[v1.Hash]ocispec.Descriptor{}}
	if c.media == "" {
		c.media = types.OCIManifestSchema1
	}
	for _, l := range m.Layers {
		h, err := v1.NewHash(string(l.Digest))
		if err != nil {
			return nil, err
		}
		c.layers[h] = l
	}
	return c, nil
}

func (c *storeCore) RawConfigFile() ([]byte, error)      { return c.config, nil }
func (c *storeCore) MediaType() (types.MediaType, error) { return c.media, nil }
func (c *storeCore) RawManifest() ([]byte, error)        { return c.manifest, nil }

func (c *storeCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d, ok := c.layers[h]
	if !ok {
		return nil, fmt.Errorf("blob %s is not a layer of this image", h)
	}
	return storeLayer{c.s, d}, nil
}

type storeLayer struct {
	s *Store
	d ocispec.Descriptor
}

func (l storeLayer) Digest() (v1.Hash, error)            { return v1.NewHash(string(l.d.Digest)) }
func (l storeLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l storeLayer) MediaType() (types.MediaType, error) { return types.MediaType(l.d.MediaType), nil }
func (l storeLayer) Compressed() (io.ReadCloser, error) {
	if err := checkDigest(l.d.Digest); err != nil {
		return nil, err
	}
	return os.Open(l.s.blobPath(l.d.Digest))
}
