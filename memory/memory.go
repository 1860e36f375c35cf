package memory

import (
	"errors"
	"fmt"
)

// Addr is a guest physical address.
type Addr uint64

// ErrOutOfRange is returned for an access that does not lie wholly inside one region.
var ErrOutOfRange = errors.New("guest address out of range")

// Region is one contiguous range of guest physical memory backed by host memory.
type Region struct {
	Base Addr
	Mem  []byte
}

// End is the first address past the region.
func (r Region) End() Addr { return r.Base + Addr(len(r.Mem)) }

// Guest is guest physical memory: a sorted set of non-overlapping regions. Every access
// is bounds-checked; an access may not span two regions. It is safe for concurrent use
// as far as the underlying bytes are (the guest writes them concurrently anyway).
type Guest struct {
	regions []Region
	unmap   func() error
}

// FromRegions wraps host memory the caller owns (tests, fakes). Regions must be sorted
// by Base and must not overlap.
func FromRegions(rs ...Region) (*Guest, error) {
	for i, r := range rs {
		if r.End() < r.Base {
			return nil, fmt.Errorf("region %d at %#x: wraps the address space", i, r.Base)
		}
		if i > 0 && r.Base < rs[i-1].End() {
			return nil, fmt.Errorf("region %d at %#x overlaps region %d", i, r.Base, i-1)
		}
	}
	return &Guest{regions: append([]Region(nil), rs...)}, nil
}

// Regions returns the regions, sorted by base address.
func (g *Guest) Regions() []Region { return g.regions }

// Size is the total number of bytes of guest memory.
func (g *Guest) Size() uint64 {
	var n uint64
	for _, r := range g.regions {
		n += uint64(len(r.Mem))
	}
	return n
}

// Slice returns the n bytes at a, aliasing guest memory. The access must lie inside
// one region.
func (g *Guest) Slice(a Addr, n uint64) ([]byte, error) {
	for _, r := range g.regions {
		if a < r.Base || a >= r.End() {
			continue
		}
		off := uint64(a - r.Base)
		if n > uint64(len(r.Mem))-off {
			break
		}
		return r.Mem[off : off+n : off+n], nil
	}
	return nil, fmt.Errorf("%w: %d bytes at %#x", ErrOutOfRange, n, uint64(a))
}

// ReadAt copies len(p) bytes at a into p.
func (g *Guest) ReadAt(p []byte, a Addr) error {
	b, err := g.Slice(a, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

// WriteAt copies p into guest memory at a.
func (g *Guest) WriteAt(p []byte, a Addr) error {
	b, err := g.Slice(a, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// Close unmaps memory that New mapped; it is a no-op for FromRegions.
func (g *Guest) Close() error {
	if g.unmap == nil {
		return nil
	}
	err := g.unmap()
	g.unmap, g.regions = nil, nil
	return err
}
