package virtio

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/hullvm/hull/memory"
)

// field16 is a little-endian 16-bit ring field the driver and device both write
// (avail.idx, used.idx, used_event, avail_event), accessed atomically through the aligned
// 32-bit word that holds it: sync/atomic has no 16-bit operations, and atomics order the
// field against the ring entries it publishes (§2.7.13.3, §2.7.8). Hosts are
// little-endian (x86-64).
type field16 struct {
	w     *uint32
	shift uint
}

// mapField16 maps the 16-bit field at guest address a (2-byte aligned).
func mapField16(mem Memory, a memory.Addr) (field16, error) {
	if a%2 != 0 {
		return field16{}, fmt.Errorf("ring field at %#x: not 2-byte aligned", uint64(a))
	}
	b, err := mem.Slice(a&^3, 4)
	if err != nil {
		return field16{}, err
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%4 != 0 {
		return field16{}, fmt.Errorf("ring field at %#x: host memory not 4-byte aligned", uint64(a))
	}
	return field16{w: (*uint32)(p), shift: uint(a&2) * 8}, nil
}

func (f field16) load() uint16 { return uint16(atomic.LoadUint32(f.w) >> f.shift) }

// store writes v, leaving the other half of the word (which the other side may be
// writing) as it is.
func (f field16) store(v uint16) {
	mask := uint32(0xffff) << f.shift
	for {
		old := atomic.LoadUint32(f.w)
		if atomic.CompareAndSwapUint32(f.w, old, old&^mask|uint32(v)<<f.shift) {
			return
		}
	}
}
