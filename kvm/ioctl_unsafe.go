package kvm

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlPtr issues an ioctl whose argument points at a mirrored kernel struct.
func ioctlPtr[T any](h handle, req uintptr, p *T) (uintptr, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, h.fd, req, uintptr(unsafe.Pointer(p)))
	runtime.KeepAlive(h.f)
	if e != 0 {
		return r, e
	}
	return r, nil
}

// hostAddr is the host virtual address of the first byte of b, for
// kvm_userspace_memory_region.userspace_addr. b must be non-empty and must stay mapped
// for as long as the VM can reach it (the caller owns the mapping).
func hostAddr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// setImmediateExit stores kvm_run.immediate_exit (byte 1 of the shared page) from any
// thread. The first four bytes are request_interrupt_window, immediate_exit and padding;
// hull never requests an interrupt window (the irqchip is in the kernel), so storing
// the word whole is safe, and atomic so the vCPU thread sees it.
func setImmediateExit(run []byte, on bool) {
	var v uint32
	if on {
		v = 1 << 8 // little-endian: byte 1
	}
	atomic.StoreUint32(word(run, 0), v)
}

// word is the 32-bit word at b[off:off+4], for atomic access to memory KVM shares
// (off must be a multiple of 4 in a 4-byte aligned b, as an mmap'd page is).
func word(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off : off+4][0])) }
