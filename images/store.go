package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNotFound is returned (wrapped) when a reference names no image in the store.
var ErrNotFound = errors.New("image not found")

// Image is one image in the store: its OCI config and its layers, lowest first.
type Image struct {
	ID       digest.Digest // digest of the config blob, as Docker shows it
	Manifest digest.Digest // digest of the stored manifest (what a registry calls it)
	Names    []string      // familiar names: "busybox:latest", "localhost:5000/app:v1"
	Config   ocispec.Image
	Layers   []Layer
	Size     int64     // sum of the layers' uncompressed sizes
	Created  time.Time // from the config; zero when the config has none
}

// Layer is one layer of an image.
type Layer struct {
	DiffID    digest.Digest // digest of the uncompressed tar; keys the layer disk
	Digest    digest.Digest // digest of the stored (possibly compressed) blob
	MediaType string
	Size      int64 // size of the stored blob
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithProgress sets where pulls and conversions report progress; the default reports
// nothing.
func WithProgress(p Progress) Option { return func(s *Store) { s.progress = p } }

// Get returns the image that ref names: a name ("busybox", "busybox:latest",
// "localhost:5000/app:v1"), a name with a digest ("busybox@sha256:..."), a full image ID
// or an unambiguous prefix of one. The error wraps ErrNotFound when nothing matches.
func (s *Store) Get(ctx context.Context, ref string) (*Image, error) { return s.get(ctx, ref) }

// Disks returns the image's layer disks, lowest layer first, converting each layer that
// has no disk yet (once per diffID, shared by every image that has the layer). Each
// disk is an uncompressed EROFS filesystem image whose whiteouts are overlayfs
// whiteouts, so the disks stack directly as overlay lower directories.
func (s *Store) Disks(ctx context.Context, img *Image) ([]string, error) { return s.disks(ctx, img) }

// Store is an image store rooted at a state directory:
//
//	ROOT/images/index.json              the images: ID, manifest, names (replaced atomically)
//	ROOT/images/blobs/sha256/HEX        manifests, configs and layer blobs, by digest
//	ROOT/images/lock                    flock: shared by readers of several files, exclusive by writers
//	ROOT/images/tmp/NNN/                one private work folder per operation (flocked while in use)
//	ROOT/layers/HEX.erofs               the layer disk of the layer whose diffID is sha256:HEX
//
// Every file is written to a temporary name, synced and renamed into place, and the
// index is written last, so a process killed at any moment leaves at worst unreferenced
// files that the garbage collector removes. A Store is safe for concurrent use by several
// goroutines and several processes.
type Store struct {
	root       string
	dir        string // root/images
	layers     string // root/layers
	log        *slog.Logger
	progress   Progress
	mkfs       string // mkfs.erofs
	limits     Limits
	scratch    string // tmpfs for extracting small layers, or ""
	scratchMax int64
}

// Open opens (creating if needed) the store under the state directory root.
func Open(root string, opts ...Option) (*Store, error) {
	if root == "" {
		return nil, errors.New("open image store: empty state directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	s := &Store{
		root:       abs,
		dir:        filepath.Join(abs, "images"),
		layers:     filepath.Join(abs, "layers"),
		log:        slog.New(slog.DiscardHandler),
		progress:   nopProgress{},
		mkfs:       "mkfs.erofs",
		limits:     DefaultLimits(),
		scratch:    "/dev/shm",
		scratchMax: 2 << 30,
	}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{s.dir, filepath.Join(s.dir, "blobs", "sha256"), filepath.Join(s.dir, "tmp"), s.layers} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open image store %s: %w", root, err)
		}
	}
	return s, nil
}

// Root returns the state directory the store lives in.
func (s *Store) Root() string { return s.root }

// WithLimits sets the limits applied to layer content.
func WithLimits(l Limits) Option { return func(s *Store) { s.limits = l } }

// WithMkfs sets the mkfs.erofs program to run (a name on PATH or a path).
func WithMkfs(path string) Option { return func(s *Store) { s.mkfs = path } }

// record is one image in index.json.
type record struct {
	ID       digest.Digest `json:"id"`
	Manifest digest.Digest `json:"manifest"`
	Names    []string      `json:"names,omitempty"`
	Layers   []recLayer    `json:"layers"`
	Loaded   time.Time     `json:"loaded"`
}

type recLayer struct {
	Digest digest.Digest `json:"digest"`
	DiffID digest.Digest `json:"diffID"`
	Size   int64         `json:"size"` // uncompressed
}

type index struct {
	Version int      `json:"version"`
	Images  []record `json:"images"`
}

const indexVersion = 1

// readIndex reads index.json; a missing file is an empty store. The file is only ever
// replaced by rename, so no lock is needed to read a consistent copy.
func (s *Store) readIndex() (*index, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return &index{Version: indexVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	var ix index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("read image index %s: %w (the store is damaged: remove the file to start over)", filepath.Join(s.dir, "index.json"), err)
	}
	if ix.Version != indexVersion {
		return nil, fmt.Errorf("read image index: version %d, this hull knows %d", ix.Version, indexVersion)
	}
	return &ix, nil
}

// writeIndexLocked replaces index.json; the caller holds the exclusive lock.
func (s *Store) writeIndexLocked(ix *index) error {
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return fmt.Errorf("write image index: %w", err)
	}
	return writeFileAtomic(filepath.Join(s.dir, "index.json"), b, 0o600)
}

// lock takes the store-wide flock, exclusive or shared, and returns its release.
func (s *Store) lock(ctx context.Context, exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock image store: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := flockCtx(ctx, int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock image store: %w", err)
	}
	return func() { f.Close() }, nil
}

// flockCtx takes a flock, polling without blocking so that ctx can cancel the wait.
func flockCtx(ctx context.Context, fd, how int) error {
	delay := time.Millisecond
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// writeFileAtomic writes b to path through a synced temporary file and a rename, then
// syncs the directory.
func writeFileAtomic(path string, b []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// blobPath is where the blob with digest d lives. d must be validated.
func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", string(d.Algorithm()), d.Encoded())
}

// diskPath is the layer disk of the layer with diffID d.
func (s *Store) diskPath(d digest.Digest) string {
	return filepath.Join(s.layers, d.Encoded()+".erofs")
}

// readBlob reads a small blob (manifest, config) whole, checking its digest.
func (s *Store) readBlob(d digest.Digest, max int64) ([]byte, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("blob %s: larger than %d bytes", d, max)
	}
	if got := digest.FromBytes(b); got != d {
		return nil, fmt.Errorf("blob %s: content has digest %s: the store is damaged, remove the image and load it again", d, got)
	}
	return b, nil
}

// checkDigest accepts only sha256 digests in canonical form, so a digest can name a file.
func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", string(d), err)
	}
	if d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %s: only sha256 is supported", d)
	}
	return nil
}

// tempDir makes a private work folder under the store, which the garbage collector
// leaves alone while this process lives; done removes it.
func (s *Store) tempDir() (dir string, done func(), err error) {
	dir, done, err = lockedDir(filepath.Join(s.dir, "tmp"), "op-")
	if err != nil {
		return "", nil, fmt.Errorf("image store work folder: %w", err)
	}
	return dir, done, nil
}

// lockedDir makes a private folder PREFIX* in parent beside a flocked PREFIX*.lock file
// made first, so a folder without a held lock is always a leftover (see sweepLocked).
func lockedDir(parent, prefix string) (dir string, done func(), err error) {
	f, err := os.CreateTemp(parent, prefix+"*.lock")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() {
		os.RemoveAll(dir)
		os.Remove(f.Name())
		f.Close()
	}
	dir = strings.TrimSuffix(f.Name(), ".lock")
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		dir = ""
		cleanup()
		return "", nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		dir = ""
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// sweepLocked removes the folders lockedDir made in parent whose process is gone, and
// returns how many.
func sweepLocked(parent, prefix string) (int, error) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || e.IsDir() {
			continue
		}
		base, ok := strings.CutSuffix(name, ".lock")
		if !ok {
			continue
		}
		lock := filepath.Join(parent, name)
		f, err := os.Open(lock)
		if err != nil {
			continue
		}
		free := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
		if free {
			// Holding the lock now, so no one else can be using the folder.
			if err := os.RemoveAll(filepath.Join(parent, base)); err != nil {
				f.Close()
				return n, err
			}
			os.Remove(lock)
			n++
		}
		f.Close()
	}
	// A folder whose lock file is gone is a leftover too.
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			if _, err := os.Stat(filepath.Join(parent, e.Name()+".lock")); errors.Is(err, fs.ErrNotExist) {
				if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
					return n, err
				}
				n++
			}
		}
	}
	return n, nil
}

// List returns every image in the store, most recently loaded first.
func (s *Store) List(ctx context.Context) ([]*Image, error) {
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(ix.Images, func(i, j int) bool { return ix.Images[i].Loaded.After(ix.Images[j].Loaded) })
	out := make([]*Image, 0, len(ix.Images))
	for i := range ix.Images {
		img, err := s.image(&ix.Images[i])
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// image builds an Image from its record, reading the manifest and the config.
func (s *Store) image(r *record) (*Image, error) {
	cb, err := s.readBlob(r.ID, maxConfig)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", r.ID, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", r.ID, err)
	}
	mb, err := s.readBlob(r.Manifest, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", r.ID, err)
	}
	m, err := parseManifest(mb)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.ID, err)
	}
	if len(m.Layers) != len(r.Layers) {
		return nil, fmt.Errorf("image %s: manifest has %d layers, index %d: the store is damaged", r.ID, len(m.Layers), len(r.Layers))
	}
	img := &Image{ID: r.ID, Manifest: r.Manifest, Names: append([]string(nil), r.Names...), Config: cfg}
	if cfg.Created != nil {
		img.Created = *cfg.Created
	}
	for i, l := range m.Layers {
		img.Layers = append(img.Layers, Layer{DiffID: r.Layers[i].DiffID, Digest: l.Digest, MediaType: l.MediaType, Size: l.Size})
		img.Size += r.Layers[i].Size
	}
	return img, nil
}

func (s *Store) get(ctx context.Context, ref string) (*Image, error) {
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	r, err := find(ix, ref)
	if err != nil {
		return nil, err
	}
	return s.image(r)
}

// find resolves ref in the index: a name first, then an ID or ID prefix.
func find(ix *index, ref string) (*record, error) {
	notFound := fmt.Errorf("%w: %s: run `hull pull %s` or `hull load -i FILE` first", ErrNotFound, ref, ref)
	if ref == "" {
		return nil, fmt.Errorf("%w: empty reference", ErrNotFound)
	}
	if n, err := familiar(ref); err == nil {
		for i := range ix.Images {
			r := &ix.Images[i]
			if n.digest != "" {
				if r.Manifest == n.digest && (n.repo == "" || hasRepo(r.Names, n.repo)) {
					return r, nil
				}
				continue
			}
			if slices.Contains(r.Names, n.String()) {
				return r, nil
			}
		}
	}
	id := strings.TrimPrefix(ref, "sha256:")
	if len(id) < 4 || len(id) > 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, notFound
	}
	var hit *record
	for i := range ix.Images {
		if strings.HasPrefix(ix.Images[i].ID.Encoded(), id) {
			if hit != nil {
				return nil, fmt.Errorf("image ID prefix %s is ambiguous: give more of it", id)
			}
			hit = &ix.Images[i]
		}
	}
	if hit == nil {
		return nil, notFound
	}
	return hit, nil
}

func hasRepo(names []string, repo string) bool {
	for _, n := range names {
		if r, _, ok := splitName(n); ok && r == repo {
			return true
		}
	}
	return false
}
