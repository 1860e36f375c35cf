package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits bound what one layer may hold; a layer past a limit is refused.
type Limits struct {
	MaxBytes   int64 // total size of the regular files in a layer
	MaxEntries int   // tar entries in a layer
}

// DefaultLimits are generous for real images and stop decompression bombs.
func DefaultLimits() Limits { return Limits{MaxBytes: 64 << 30, MaxEntries: 4 << 20} }

// OCI image-spec layer.md whiteouts, and the overlayfs forms they become: a character
// device 0/0 named like the deleted entry, and an xattr on an opaque directory.
const (
	whPrefix      = ".wh."
	whMeta        = ".wh..wh."
	whOpaque      = ".wh..wh..opq"
	xattrOpaque   = "trusted.overlay.opaque"
	xattrOverlay  = "trusted.overlay."
	paxXattr      = "SCHILY.xattr."
	maxPathLen    = 4096
	maxNameLen    = 255
	maxXattrValue = 64 << 10
)

// extractor writes one layer tarball into an empty directory it owns. Every path is
// resolved component by component under the directory with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), so an entry can neither name a place outside the tree nor write
// through a symlink the layer made; such entries are refused, not rewritten.
type extractor struct {
	root  int // O_PATH fd of the tree's root
	lim   Limits
	bytes int64
	dirs  []dirTime // directory times, set last (adding entries changes them)
}

type dirTime struct {
	rel   string
	times [2]unix.Timespec
}

// extract unpacks the layer tar stream r into dir, translating OCI whiteouts into
// overlayfs ones. dir must be an empty directory private to the caller.
func extract(ctx context.Context, r io.Reader, dir string, lim Limits) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open layer tree: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmodat(fd, ".", 0o755, 0); err != nil {
		return fmt.Errorf("layer tree: %w", err)
	}
	x := &extractor{root: fd, lim: lim}
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: tar entry %d: %v", ErrInvalid, n, err)
		}
		if n >= lim.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrInvalid, lim.MaxEntries)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.setTimes(d.rel, d.times); err != nil {
			return fmt.Errorf("entry %q: %w", d.rel, err)
		}
	}
	return nil
}

// cleanName validates a tar path and returns it relative to the root ("." for the root).
func cleanName(n string) (string, error) {
	if n == "" {
		return "", fmt.Errorf("%w: empty path", ErrInvalid)
	}
	if len(n) > maxPathLen {
		return "", fmt.Errorf("%w: path longer than %d bytes", ErrInvalid, maxPathLen)
	}
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("%w: absolute path", ErrInvalid)
	}
	if strings.IndexByte(n, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL in path", ErrInvalid)
	}
	var parts []string
	for _, c := range strings.Split(n, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: path escapes the layer root (..)", ErrInvalid)
		}
		if len(c) > maxNameLen {
			return "", fmt.Errorf("%w: name longer than %d bytes", ErrInvalid, maxNameLen)
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the layer root is not a directory", ErrInvalid)
		}
		return x.meta(x.root, ".", ".", hdr)
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if strings.HasPrefix(base, whPrefix) {
		return x.whiteout(dir, base)
	}
	pfd, err := x.dirFD(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)

	var st unix.Stat_t
	switch err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil:
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !(isDir && hdr.Typeflag == tar.TypeDir) {
			if err := removeAt(pfd, base, isDir, 0); err != nil {
				return fmt.Errorf("replace: %w", err)
			}
		}
	case !errors.Is(err, unix.ENOENT):
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
	case tar.TypeReg, tar.TypeGNUSparse: // archive/tar fills a sparse file's holes
		if err := x.file(pfd, base, hdr, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" || len(hdr.Linkname) > maxPathLen || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return fmt.Errorf("%w: bad symlink target", ErrInvalid)
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		return x.hardlink(pfd, base, rel, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if hdr.Devmajor < 0 || hdr.Devmajor > 0xfff || hdr.Devminor < 0 || hdr.Devminor > 0xfffff {
			return fmt.Errorf("%w: device number %d:%d out of range", ErrInvalid, hdr.Devmajor, hdr.Devminor)
		}
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, kind|0o600, dev); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unsupported tar entry type %q", ErrInvalid, hdr.Typeflag)
	}
	return x.meta(pfd, base, rel, hdr)
}

// file writes a regular file's content.
func (x *extractor) file(pfd int, base string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size < 0 || hdr.Size > x.lim.MaxBytes-x.bytes {
		return fmt.Errorf("%w: size %d exceeds the layer limit of %d bytes", ErrInvalid, hdr.Size, x.lim.MaxBytes)
	}
	x.bytes += hdr.Size
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	n, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("%w: content: %v", ErrInvalid, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%w: content is %d bytes, header says %d", ErrInvalid, n, hdr.Size)
	}
	return f.Close()
}

// hardlink links base in pfd to target, an entry this layer already holds.
func (x *extractor) hardlink(pfd int, base, rel, target string) error {
	t, err := cleanName(target)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", target, err)
	}
	if t == "." || t == rel {
		return fmt.Errorf("%w: hard link to %q", ErrInvalid, target)
	}
	tdir, tbase := path.Split(t)
	tdir = strings.TrimSuffix(tdir, "/")
	if tdir == "" {
		tdir = "."
	}
	tfd, err := x.dirFD(tdir, false)
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%w: hard link target %q is not in this layer", ErrInvalid, target)
	}
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", target, err)
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%w: hard link target %q is not in this layer", ErrInvalid, target)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%w: hard link to directory %q", ErrInvalid, target)
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hard link to %q: %w", target, err)
	}
	return nil
}

// whiteout records a deletion (.wh.NAME) or an opaque directory (.wh..wh..opq) the
// overlayfs way.
func (x *extractor) whiteout(dir, base string) error {
	pfd, err := x.dirFD(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if base == whOpaque {
		return lsetxattrAt(pfd, ".", xattrOpaque, []byte("y"))
	}
	if strings.HasPrefix(base, whMeta) {
		return nil // aufs bookkeeping (.wh..wh.plnk and the like): not part of the tree
	}
	name := strings.TrimPrefix(base, whPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: whiteout of %q", ErrInvalid, name)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return nil // the layer also has the entry itself, which wins
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout: %w", err)
	}
	return nil
}

// meta applies ownership, mode, xattrs and times to base in pfd; rel is its path.
func (x *extractor) meta(pfd int, base, rel string, hdr *tar.Header) error {
	if hdr.Uid < 0 || hdr.Uid > 1<<32-2 || hdr.Gid < 0 || hdr.Gid > 1<<32-2 {
		return fmt.Errorf("%w: owner %d:%d out of range", ErrInvalid, hdr.Uid, hdr.Gid)
	}
	flags := unix.AT_SYMLINK_NOFOLLOW
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, flags); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	link := hdr.Typeflag == tar.TypeSymlink
	if !link {
		// After chown, which clears set-id bits. Fchmodat follows a final symlink, but
		// base is not one: this extractor just made it in a tree only it writes.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, xattrOverlay) {
			// overlayfs acts on these (redirect, metacopy): a layer may not set them.
			return fmt.Errorf("%w: xattr %s is reserved for overlayfs", ErrInvalid, name)
		}
		if name == "" || len(name) > 255 || len(v) > maxXattrValue {
			return fmt.Errorf("%w: bad xattr %q", ErrInvalid, name)
		}
		if err := lsetxattrAt(pfd, base, name, []byte(v)); err != nil {
			if link && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
				continue // user.* xattrs cannot be set on symlinks
			}
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	mt := hdr.ModTime
	at := hdr.AccessTime
	if at.IsZero() {
		at = mt
	}
	ts := [2]unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	if mt.IsZero() || mt.Unix() < 0 {
		ts = [2]unix.Timespec{{}, {}}
	}
	if hdr.Typeflag == tar.TypeDir {
		x.dirs = append(x.dirs, dirTime{rel: rel, times: ts})
		return nil
	}
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimes: %w", err)
	}
	return nil
}

func (x *extractor) setTimes(rel string, ts [2]unix.Timespec) error {
	if rel == "." {
		return unix.UtimesNanoAt(x.root, ".", ts[:], 0)
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	pfd, err := x.dirFD(dir, false)
	if err != nil {
		return nil // removed by a later entry
	}
	defer unix.Close(pfd)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("utimes: %w", err)
	}
	return nil
}

// dirFD opens the directory rel (relative, clean) under the root, refusing any symlink on
// the way; with create it makes missing directories (mode 0755, root-owned).
func (x *extractor) dirFD(rel string, create bool) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	fd, err := unix.Openat2(x.root, rel, how)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) || !create {
		return -1, resolveErr(rel, err)
	}
	fd, err = unix.Dup(x.root)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := unix.Openat2(fd, c, how)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(fd, c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, err
			}
			next, err = unix.Openat2(fd, c, how)
		}
		unix.Close(fd)
		if err != nil {
			return -1, resolveErr(rel, err)
		}
		fd = next
	}
	return fd, nil
}

func resolveErr(rel string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%w: path %q goes through a symlink", ErrInvalid, rel)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: %q is not a directory", ErrInvalid, rel)
	}
	return fmt.Errorf("resolve %q: %w", rel, err)
}

// lsetxattrAt sets an xattr on base in the directory pfd without following a final
// symlink, through the directory's /proc/self/fd link.
func lsetxattrAt(pfd int, base, name string, value []byte) error {
	p := "/proc/self/fd/" + strconv.Itoa(pfd)
	if base == "." {
		return unix.Setxattr(p, name, value, 0) // follows the magic link to the directory
	}
	return unix.Lsetxattr(p+"/"+base, name, value, 0)
}

// removeAt removes base from pfd, recursively when it is a directory.
func removeAt(pfd int, base string, isDir bool, depth int) error {
	if !isDir {
		return unix.Unlinkat(pfd, base, 0)
	}
	if depth > 4096 {
		return fmt.Errorf("%w: directory tree too deep", ErrInvalid)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), base)
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := removeAt(fd, e.Name(), e.IsDir(), depth+1); err != nil {
			return err
		}
	}
	return unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
}
