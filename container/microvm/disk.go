package microvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tools are the e2fsprogs programs that make and read ext4 disks on the host.
type Tools struct {
	Mkfs    string // mkfs.ext4
	Debugfs string // debugfs: reads a volume disk back without mounting it
}

// FindTools looks the programs up on PATH (and in /sbin, /usr/sbin). mkfs.ext4 is
// required; without debugfs Debugfs is "" and writable volumes are refused.
func FindTools() (Tools, error) {
	var t Tools
	var err error
	if t.Mkfs, err = lookPath("mkfs.ext4"); err != nil {
		return t, err
	}
	t.Debugfs, _ = lookPath("debugfs")
	return t, nil
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("VM mode needs %s on the host: install e2fsprogs", name)
}

// MakeExt4 makes path a sparse file of size bytes holding an ext4 filesystem, with the
// contents of dir when dir is not "" (mkfs.ext4 -d).
func (t Tools) MakeExt4(ctx context.Context, path string, size int64, dir string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create disk: %w", err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("size disk %s: %w", path, err)
	}
	// Lazy inode table and journal initialization: mkfs writes only the metadata it
	// must, the guest kernel zeroes the rest in the background if it runs long enough.
	args := []string{"-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", "-m", "0"}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, path)
	if out, err := exec.CommandContext(ctx, t.Mkfs, args...).CombinedOutput(); err != nil {
		os.Remove(path)
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", path, err, bytes.TrimSpace(out))
	}
	return nil
}

// dirSize is the bytes the files under dir hold.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		n += 4096 // its inode and directory entry, roughly
		return nil
	})
	return n, err
}

// volumeSize is the size of the disk for a volume whose files hold n bytes: room to
// write as much again, at least 256 MiB. The file is sparse, so unused room costs
// nothing on the host.
func volumeSize(n int64) int64 {
	return max(256<<20, 2*n+64<<20)
}

// CopyOut copies the filesystem of the ext4 disk img into dst, which then holds
// exactly the disk's files: what the disk lacks is removed from dst, what it has
// replaces dst's. The disk is read with debugfs, never mounted. The top folder's
// lost+found, made by mkfs, is left out unless dst had one.
func (t Tools) CopyOut(ctx context.Context, img, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(img), ".copyout-")
	if err != nil {
		return fmt.Errorf("copy volume back: %w", err)
	}
	defer os.RemoveAll(tmp)
	// rdump DIR DEST writes DEST/<name of DIR>; for "/" debugfs names it after
	// nothing, so dump each top-level entry instead.
	ents, err := t.ls(ctx, img)
	if err != nil {
		return err
	}
	_, hadLost := os.Lstat(filepath.Join(dst, "lost+found"))
	var cmds []string
	for _, e := range ents {
		if e == "lost+found" && hadLost != nil {
			continue
		}
		cmds = append(cmds, fmt.Sprintf("rdump %q %q", "/"+e, tmp))
	}
	if len(cmds) > 0 {
		x := exec.CommandContext(ctx, t.Debugfs, "-f", "-", img)
		x.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
		var out bytes.Buffer
		x.Stdout, x.Stderr = &out, &out
		if err := x.Run(); err != nil {
			return fmt.Errorf("debugfs rdump %s: %v: %s", img, err, bytes.TrimSpace(out.Bytes()))
		}
	}
	return mirror(tmp, dst, ents)
}

// ls lists the top folder of the disk img (names only, without . and ..).
func (t Tools) ls(ctx context.Context, img string) ([]string, error) {
	out, err := exec.CommandContext(ctx, t.Debugfs, "-R", "ls -p /", img).Output()
	if err != nil {
		return nil, fmt.Errorf("debugfs ls %s: %w", img, err)
	}
	names, err := parseLs(string(out))
	if err != nil {
		return nil, fmt.Errorf("volume disk %s: %w", img, err)
	}
	return names, nil
}

// parseLs reads the names in debugfs's "ls -p" output, one "/inode/mode/uid/gid/name/size/"
// line per entry. The guest chose the names: one that would not survive a debugfs
// command line (quotes, backslashes, line breaks, NUL) is refused rather than quoted.
func parseLs(out string) ([]string, error) {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "/")
		if len(f) != 8 || f[0] != "" || f[7] != "" {
			// A name with a line break or a slash-like split: refuse, never guess.
			return nil, fmt.Errorf("cannot read the entry %q of its top folder: rename it", line)
		}
		name := f[5]
		if name == "" || name == "." || name == ".." {
			continue
		}
		if strings.ContainsAny(name, "\"\\\r\x00") {
			return nil, fmt.Errorf("file name %q in its top folder cannot be copied back: rename it", name)
		}
		names = append(names, name)
	}
	return names, nil
}

// mirror makes dst hold what src holds: entries of dst missing from src are removed,
// src's entries are moved (or copied) over dst's. keep names src's top-level entries;
// an entry of dst not in keep and not in src is removed.
func mirror(src, dst string, keep []string) error {
	want := map[string]bool{}
	for _, k := range keep {
		want[k] = true
	}
	have, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("copy volume back to %s: %w", dst, err)
	}
	for _, e := range have {
		if want[e.Name()] {
			continue
		}
		if e.Name() == "lost+found" {
			continue // the host's own, when it had one
		}
		if err := os.RemoveAll(filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("copy volume back: %w", err)
		}
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("copy volume back: %w", err)
	}
	for _, e := range ents {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if err := os.RemoveAll(to); err != nil {
			return fmt.Errorf("copy volume back: %w", err)
		}
		if err := os.Rename(from, to); err != nil {
			if !errors.Is(err, os.ErrExist) && !isCrossDevice(err) {
				return fmt.Errorf("copy volume back: %w", err)
			}
			if err := copyTree(from, to); err != nil {
				return fmt.Errorf("copy volume back: %w", err)
			}
		}
	}
	return nil
}

func isCrossDevice(err error) bool {
	var le *os.LinkError
	return errors.As(err, &le) && strings.Contains(le.Err.Error(), "cross-device")
}

// copyTree copies a file, symlink or folder tree (modes kept, owners when allowed).
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		out := filepath.Join(to, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(out, fi.Mode().Perm()); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, out)
		case fi.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			w, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, in); err != nil {
				w.Close()
				return err
			}
			return w.Close()
		}
		return nil // devices, fifos, sockets: not carried back
	})
}
