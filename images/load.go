package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Load brings in every image of a docker save tarball (legacy or OCI form, plain, gzip
// or zstd) or of an OCI image layout directory. Each image is verified whole before it
// is registered; the first refusal stops the load.
func (s *Store) Load(ctx context.Context, file string) ([]*Image, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	var a archive
	if fi.IsDir() {
		a = dirArchive(file)
	} else {
		f, done, err := s.openPlain(ctx, file)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", file, err)
		}
		defer done()
		ta, err := openTarArchive(f)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", file, err)
		}
		a = ta
	}
	cs, err := candidates(ctx, a, file)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var out []*Image
	for _, c := range cs {
		img, err := s.ingest(ctx, c)
		if err != nil {
			return out, fmt.Errorf("load %s from %s: %w", c.what, file, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// LoadReader loads from a stream (docker load's standard input), spooling it to a
// private file in the store first.
func (s *Store) LoadReader(ctx context.Context, r io.Reader) ([]*Image, error) {
	p, done, err := s.spool(ctx, r, "input.tar")
	if err != nil {
		return nil, fmt.Errorf("load from standard input: %w", err)
	}
	defer done()
	return s.Load(ctx, p)
}

// spool copies r into a private file called name in a fresh temporary folder of the
// store, and returns its path and how to remove it.
func (s *Store) spool(ctx context.Context, r io.Reader, name string) (string, func(), error) {
	tmp, done, err := s.tempDir()
	if err != nil {
		return "", nil, err
	}
	p := filepath.Join(tmp, name)
	f, err := os.Create(p)
	if err != nil {
		done()
		return "", nil, err
	}
	_, err = io.Copy(f, &ctxReader{ctx, r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		done()
		return "", nil, err
	}
	return p, done, nil
}

// openPlain opens a tarball, decompressing a gzip or zstd one into a private file
// first (members are read by offset).
func (s *Store) openPlain(ctx context.Context, file string) (*os.File, func(), error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if mediaTypeOf(head[:n]) == ocispec.MediaTypeImageLayer {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	tmp, done, err := s.tempDir()
	if err != nil {
		return nil, nil, err
	}
	u, closeFn, err := decompress(f)
	if err != nil {
		done()
		return nil, nil, err
	}
	defer closeFn()
	out, err := os.Create(filepath.Join(tmp, "input.tar"))
	if err == nil {
		_, err = io.Copy(out, &ctxReader{ctx, u})
	}
	if err == nil {
		_, err = out.Seek(0, io.SeekStart)
	}
	if err != nil {
		if out != nil {
			out.Close()
		}
		done()
		return nil, nil, fmt.Errorf("%w: decompress: %v", ErrInvalid, err)
	}
	return out, func() { out.Close(); done() }, nil
}

// ImportOptions describe the image Import makes around a root filesystem.
type ImportOptions struct {
	Name    string              // "repo:tag", or "" for an unnamed image
	Config  ocispec.ImageConfig // Cmd, Env, WorkingDir... (Docker's --change)
	Created time.Time           // zero: now
}

// Import makes a one-layer image from a root filesystem tarball (plain, gzip or zstd).
func (s *Store) Import(ctx context.Context, file string, o ImportOptions) (*Image, error) {
	what := o.Name
	if what == "" {
		what = file
	}
	img, err := s.doImport(ctx, file, o)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", what, err)
	}
	return img, nil
}

// ImportReader is Import from a stream (docker import's "-"), spooled to a private
// file in the store first.
func (s *Store) ImportReader(ctx context.Context, r io.Reader, o ImportOptions) (*Image, error) {
	p, done, err := s.spool(ctx, r, "rootfs.tar")
	if err != nil {
		return nil, fmt.Errorf("import from standard input: %w", err)
	}
	defer done()
	return s.Import(ctx, p, o)
}

func (s *Store) doImport(ctx context.Context, file string, o ImportOptions) (*Image, error) {
	var names []string
	if o.Name != "" {
		n, err := normalizeName(o.Name)
		if err != nil {
			return nil, err
		}
		names = []string{n}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dir := filepath.Dir(file)
	d, err := describe(dirArchive(dir), filepath.Base(file))
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	_, diffID, err := uncompressedDigest(&ctxReader{ctx, f})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	created := o.Created
	if created.IsZero() {
		created = time.Now().UTC().Truncate(time.Second)
	}
	hist := []ocispec.History{{Created: &created, CreatedBy: "hull import " + filepath.Base(file)}}
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config:   o.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History:  hist,
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	mb, err := synthManifest(cb, []ocispec.Descriptor{d})
	if err != nil {
		return nil, err
	}
	src := &memSource{blobs: map[digest.Digest][]byte{digest.FromBytes(cb): cb}, files: map[digest.Digest]string{d.Digest: file}}
	return s.ingest(ctx, candidate{what: file, manifest: mb, names: names, src: src})
}

// memSource serves blobs from memory and from whole files.
type memSource struct {
	blobs map[digest.Digest][]byte
	files map[digest.Digest]string
}

func (m *memSource) open(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if b, ok := m.blobs[d.Digest]; ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	if p, ok := m.files[d.Digest]; ok {
		return os.Open(p)
	}
	return nil, fmt.Errorf("blob %s: %w", d.Digest, os.ErrNotExist)
}
