package lab

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Mode bits of the newc format (they are the Linux st_mode bits).
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

// maxFileSize is the largest file a newc header can describe (8 hex digits).
const maxFileSize = 1<<32 - 1

// cpioWriter writes a newc ("070701") cpio archive, the format the Linux kernel unpacks
// as an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst). File
// contents are streamed, so a payload of tens of megabytes is never held in memory.
//
// Every entry has its own inode number and a link count of 1: the kernel hard-links
// regular files that share an inode and have a link count above 1, which we never want.
type cpioWriter struct {
	w   io.Writer
	n   int64  // bytes written so far, for padding
	ino uint32 // last inode number handed out
}

func newCPIOWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: w} }

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

// pad writes zeros up to the next multiple of 4, as newc aligns headers and data.
func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) header(name string, mode uint32, size int64, rmajor, rminor uint32) error {
	name = strings.TrimPrefix(name, "/")
	if name == "" || strings.ContainsRune(name, 0) {
		return fmt.Errorf("cpio: bad name %q", name)
	}
	if size < 0 || size > maxFileSize {
		return fmt.Errorf("cpio: %s: size %d does not fit a newc header", name, size)
	}
	c.ino++
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	if err := c.write([]byte(h + name + "\x00")); err != nil {
		return err
	}
	return c.pad()
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) error {
	return c.header(name, modeDir|perm&0o7777, 0, 0, 0)
}

// Bytes adds a regular file with the given contents.
func (c *cpioWriter) Bytes(name string, perm uint32, data []byte) error {
	if err := c.header(name, modeFile|perm&0o7777, int64(len(data)), 0, 0); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}

// File adds a regular file of size bytes read from r; r must hold exactly that many.
func (c *cpioWriter) File(name string, perm uint32, size int64, r io.Reader) error {
	if err := c.header(name, modeFile|perm&0o7777, size, 0, 0); err != nil {
		return err
	}
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	c.n += n
	if err != nil {
		return fmt.Errorf("cpio: copy %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("cpio: %s: read %d of %d bytes: %w", name, n, size, io.ErrUnexpectedEOF)
	}
	return c.pad()
}

// Symlink adds a symbolic link to target.
func (c *cpioWriter) Symlink(name, target string) error {
	if target == "" {
		return errors.New("cpio: empty symlink target")
	}
	if err := c.header(name, modeSymlink|0o777, int64(len(target)), 0, 0); err != nil {
		return err
	}
	if err := c.write([]byte(target)); err != nil {
		return err
	}
	return c.pad()
}

// CharDev adds a character device node, such as /dev/console (5, 1).
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) error {
	return c.header(name, modeChar|perm&0o7777, 0, major, minor)
}

// Close writes the trailer and pads the archive to a multiple of 512 bytes, so another
// archive can follow it in the same initramfs. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	if err := c.header("TRAILER!!!", 0, 0, 0, 0); err != nil {
		return err
	}
	if r := c.n % 512; r != 0 {
		return c.write(make([]byte, 512-r))
	}
	return nil
}
