package virtiotest

import (
	"sync/atomic"
	"unsafe"
)

// store16 writes the little-endian 16-bit ring index at b[0:2] atomically through its
// aligned 32-bit word, as a guest's store of avail.idx would be, so that the device's
// atomic load of it orders the ring entries written before it. b must be 2-byte aligned
// inside 4-byte aligned memory (the fake guest memory is).
func store16(b []byte, v uint16) {
	w, shift := word(b)
	mask := uint32(0xffff) << shift
	for {
		old := atomic.LoadUint32(w)
		if atomic.CompareAndSwapUint32(w, old, old&^mask|uint32(v)<<shift) {
			return
		}
	}
}

// load16 reads a 16-bit ring index the device writes (used.idx, avail_event).
func load16(b []byte) uint16 {
	w, shift := word(b)
	return uint16(atomic.LoadUint32(w) >> shift)
}

func word(b []byte) (*uint32, uintptr) {
	p := unsafe.Pointer(unsafe.SliceData(b))
	off := uintptr(p) & 3
	return (*uint32)(unsafe.Add(p, -int(off))), off * 8
}
