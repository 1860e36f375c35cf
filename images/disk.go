package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// convert turns the layer blob at blob (plain, gzip or zstd tar) into an EROFS layer
// disk at out, extracting into a private tree under tmp first. It checks the content
// against diffID on the way.
//
// size is the layer's uncompressed size when known (0 if not): a layer that fits is
// extracted on the scratch tmpfs, where creating files costs a tenth of what it does on
// a disk file system.
func (s *Store) convert(ctx context.Context, blob string, diffID digest.Digest, size int64, out, tmp string) error {
	f, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	task := s.progress.Start("convert "+short(diffID), fi.Size())
	err = s.convertFrom(ctx, io.TeeReader(f, task), diffID, out, s.treeParent(tmp, size))
	task.Done(err)
	return err
}

// convertFrom extracts the layer stream r into a private tree made under parent and
// builds the disk at out from it.
func (s *Store) convertFrom(ctx context.Context, r io.Reader, diffID digest.Digest, out, parent string) error {
	u, closeFn, err := decompress(r)
	if err != nil {
		return err
	}
	defer closeFn()
	work, done, err := lockedDir(parent, "hull-tree-")
	if err != nil {
		return err
	}
	defer done()
	// work is 0700, so no other user reaches the tree (0755 like the layer root) nor the
	// set-id programs it may hold.
	tree := filepath.Join(work, "tree")
	if err := os.Mkdir(tree, 0o700); err != nil {
		return err
	}
	h := sha256.New()
	if err := extract(ctx, io.TeeReader(u, h), tree, s.limits); err != nil {
		return err
	}
	if _, err := io.Copy(h, u); err != nil { // the tar's trailing padding
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if diffID != "" {
		if got := digest.NewDigest(digest.SHA256, h); got != diffID {
			return fmt.Errorf("%w: uncompressed layer has digest %s, config says diffID %s", ErrInvalid, got, diffID)
		}
	}
	return mkfsErofs(ctx, s.mkfs, tree, out)
}

// mkfsErofs builds an uncompressed EROFS image of tree at out and syncs it. It keeps
// owners, modes, xattrs (the overlayfs whiteouts and opaque marks among them), device
// nodes and per-file modification times.
func mkfsErofs(ctx context.Context, mkfs, tree, out string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, mkfs, "--quiet", "--preserve-mtime", out, tree)
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", mkfs, err, bytes.TrimSpace(stderr.Bytes()))
	}
	f, err := os.Open(out)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (s *Store) disks(ctx context.Context, img *Image) ([]string, error) {
	out := make([]string, 0, len(img.Layers))
	for _, l := range img.Layers {
		p, err := s.disk(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", short(img.ID), short(l.Digest), err)
		}
		out = append(out, p)
	}
	return out, nil
}

// disk returns the layer's disk, converting the stored blob when there is none. A
// per-layer flock makes concurrent callers convert once.
func (s *Store) disk(ctx context.Context, l Layer) (string, error) {
	if err := checkDigest(l.DiffID); err != nil {
		return "", err
	}
	p := s.diskPath(l.DiffID)
	if s.exists(p) {
		return p, nil
	}
	lf, err := os.OpenFile(filepath.Join(s.layers, l.DiffID.Encoded()+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", err
	}
	defer lf.Close()
	if err := flockCtx(ctx, int(lf.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	if s.exists(p) {
		return p, nil
	}
	unlock, err := s.lock(ctx, false) // keeps the garbage collector away from the blob
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := checkDigest(l.Digest); err != nil {
		return "", err
	}
	blob := s.blobPath(l.Digest)
	if !s.exists(blob) {
		return "", fmt.Errorf("layer blob %s is missing from the store: remove the image and load or pull it again", l.Digest)
	}
	tmp, done, err := s.tempDir()
	if err != nil {
		return "", err
	}
	defer done()
	disk := filepath.Join(tmp, "disk")
	var size int64
	if ix, err := s.readIndex(); err == nil {
		size, _ = knownLayer(ix, l.Digest, l.DiffID)
	}
	if err := s.convert(ctx, blob, l.DiffID, size, disk, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(disk, p); err != nil {
		return "", err
	}
	if err := syncDir(s.layers); err != nil {
		return "", err
	}
	s.log.Info("layer disk built", "layer", l.DiffID, "disk", p)
	return p, nil
}

// treeParent is where a layer of size uncompressed bytes is extracted: the scratch
// tmpfs when the layer is known, at most the scratch limit, and fits twice in its free
// space; else the operation's work folder in the store.
func (s *Store) treeParent(tmp string, size int64) string {
	if s.scratch == "" || size <= 0 || size > s.scratchMax {
		return tmp
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.scratch, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		return tmp
	}
	if int64(st.Bavail)*st.Bsize < 2*size+64<<20 {
		return tmp
	}
	return s.scratch
}

// WithScratch sets the tmpfs where layers of at most max bytes are extracted before
// mkfs.erofs ("" to always extract in the store). The default is /dev/shm, 2 GiB.
func WithScratch(dir string, max int64) Option {
	return func(s *Store) { s.scratch, s.scratchMax = dir, max }
}
