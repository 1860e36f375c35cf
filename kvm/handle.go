package kvm

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// handle is an open KVM file descriptor: the *os.File owns it (and closes it); fd is
// cached so the KVM_RUN path does not go through os.File.
type handle struct {
	f  *os.File
	fd uintptr
}

func newHandle(fd int, name string) handle {
	return handle{f: os.NewFile(uintptr(fd), name), fd: uintptr(fd)}
}

// ioctl issues an ioctl with an integer (or no) argument.
func (h handle) ioctl(req, arg uintptr) (uintptr, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, h.fd, req, arg)
	runtime.KeepAlive(h.f)
	if e != 0 {
		return r, e
	}
	return r, nil
}

func (h handle) close() error {
	if h.f == nil {
		return nil
	}
	return h.f.Close()
}
