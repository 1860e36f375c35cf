package virtio

import (
	"errors"
	"io"
)

// ErrChainFull is returned when a write does not fit in a chain's device-writable buffers.
var ErrChainFull = errors.New("descriptor chain full")

// Chain is one descriptor chain taken from a queue, read as two streams (§2.7.4): first
// its device-readable buffers (Read), then its device-writable buffers (Write). The
// buffers alias guest memory, which the guest may change at any time: copy what you
// parse before you check it.
type Chain struct {
	Head uint16

	r, w               [][]byte
	readable, writable uint64
	rOff, wOff         uint64 // bytes consumed / written so far
	rc, wc             cursor
}

// cursor is a position in a list of buffers: buffer i, byte off within it.
type cursor struct{ i, off int }

// Readable is the number of device-readable bytes not yet read.
func (c *Chain) Readable() uint64 { return c.readable - c.rOff }

// Writable is the number of device-writable bytes not yet written.
func (c *Chain) Writable() uint64 { return c.writable - c.wOff }

// Written is the number of bytes written, the length the used ring reports (capped at
// 2^32-1).
func (c *Chain) Written() uint32 {
	if c.wOff > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(c.wOff)
}

// Read reads device-readable bytes; it returns io.EOF when they are all read.
func (c *Chain) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b := next(c.r, &c.rc)
		if b == nil {
			break
		}
		k := copy(p[n:], b)
		n += k
		c.rOff += uint64(k)
		c.rc.off += k
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write writes into the device-writable buffers; a short write returns ErrChainFull.
func (c *Chain) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b := next(c.w, &c.wc)
		if b == nil {
			return n, ErrChainFull
		}
		k := copy(b, p[n:])
		n += k
		c.wOff += uint64(k)
		c.wc.off += k
	}
	return n, nil
}

// Skip discards up to n device-readable bytes and returns how many it skipped.
func (c *Chain) Skip(n uint64) uint64 {
	done, _ := c.ReadFunc(n, func(b []byte) (int, error) { return len(b), nil })
	return done
}

// ReadFunc passes the next device-readable bytes, up to n of them, to f one buffer at
// a time (for zero-copy I/O, such as pwrite from guest memory) and consumes what f
// reports as done. It stops at f's first error or short count.
func (c *Chain) ReadFunc(n uint64, f func(b []byte) (int, error)) (uint64, error) {
	return each(c.r, &c.rc, &c.rOff, n, f)
}

// WriteFunc passes the next device-writable bytes, up to n of them, to f one buffer at a
// time (for zero-copy I/O, such as pread into guest memory) and counts what f reports
// as written.
func (c *Chain) WriteFunc(n uint64, f func(b []byte) (int, error)) (uint64, error) {
	return each(c.w, &c.wc, &c.wOff, n, f)
}

func each(bufs [][]byte, cur *cursor, off *uint64, n uint64, f func([]byte) (int, error)) (uint64, error) {
	var done uint64
	for done < n {
		b := next(bufs, cur)
		if b == nil {
			break
		}
		if uint64(len(b)) > n-done {
			b = b[:n-done]
		}
		k, err := f(b)
		if k < 0 || k > len(b) {
			k = 0
		}
		done += uint64(k)
		*off += uint64(k)
		cur.off += k
		if err != nil {
			return done, err
		}
		if k < len(b) {
			return done, io.ErrUnexpectedEOF
		}
	}
	return done, nil
}

// next returns the rest of the buffer at cur, moving past spent buffers, or nil at the
// end.
func next(bufs [][]byte, cur *cursor) []byte {
	for cur.i < len(bufs) {
		if b := bufs[cur.i]; cur.off < len(b) {
			return b[cur.off:]
		}
		cur.i++
		cur.off = 0
	}
	return nil
}
