package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl issues request on fd with arg pointing at buf (nil for none) and returns the
// ioctl's result.
func ioctl(fd int, request uintptr, buf []byte) (int, error) {
	var p uintptr
	if len(buf) > 0 {
		p = uintptr(unsafe.Pointer(&buf[0]))
	}
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), request, p)
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		default:
			return -1, errno
		}
	}
}

// address is the user-space address of b's first byte, for KVM_SET_USER_MEMORY_REGION.
// b must stay mapped (it is an mmap'ed region) for as long as the VM uses it.
func address(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
