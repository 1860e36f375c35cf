package memory

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Layout of x86 guest RAM: below the 32-bit MMIO gap, then above 4 GiB.
const (
	GapStart Addr = 0xC000_0000   // 3 GiB: devices live from here up to 4 GiB
	GapEnd   Addr = 0x1_0000_0000 // 4 GiB
)

// New maps size bytes of anonymous, private guest RAM, split around the MMIO gap:
// [0, min(size, 3 GiB)) and, for larger guests, the rest from 4 GiB.
func New(size uint64) (*Guest, error) {
	if size == 0 || size%4096 != 0 {
		return nil, fmt.Errorf("guest memory size %d: must be a non-zero multiple of 4096", size)
	}
	low := size
	if low > uint64(GapStart) {
		low = uint64(GapStart)
	}
	var maps [][]byte
	unmap := func() error {
		var first error
		for _, m := range maps {
			if err := unix.Munmap(m); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	add := func(n uint64) ([]byte, error) {
		m, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return nil, fmt.Errorf("mmap %d bytes of guest memory: %w", n, err)
		}
		maps = append(maps, m)
		return m, nil
	}
	lm, err := add(low)
	if err != nil {
		return nil, err
	}
	rs := []Region{{Base: 0, Mem: lm}}
	if size > low {
		hm, err := add(size - low)
		if err != nil {
			unmap()
			return nil, err
		}
		rs = append(rs, Region{Base: GapEnd, Mem: hm})
	}
	g, err := FromRegions(rs...)
	if err != nil {
		unmap()
		return nil, err
	}
	g.unmap = unmap
	return g, nil
}
