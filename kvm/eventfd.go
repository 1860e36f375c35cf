package kvm

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// EventFD is a Linux eventfd: a counter KVM signals for an ioeventfd and reads for an
// irqfd. Wait blocks only its goroutine (the descriptor is in Go's poller) and returns
// an error once Close is called, which is how a waiting goroutine is stopped.
type EventFD struct {
	f  *os.File
	fd int
}

// NewEventFD creates a non-blocking, close-on-exec eventfd.
func NewEventFD() (*EventFD, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &EventFD{f: os.NewFile(uintptr(fd), "eventfd"), fd: fd}, nil
}

// Signal adds 1 to the counter, waking a waiter (or injecting an irqfd's interrupt).
func (e *EventFD) Signal() error {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	_, err := unix.Write(e.fd, b[:])
	e.keepAlive()
	if err != nil && err != unix.EAGAIN { // EAGAIN: the counter is saturated, still signaled
		return fmt.Errorf("signal eventfd: %w", err)
	}
	return nil
}

// Wait blocks until the counter is non-zero, resets it and returns its value.
func (e *EventFD) Wait() (uint64, error) {
	var b [8]byte
	if _, err := e.f.Read(b[:]); err != nil {
		return 0, err
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// Close closes the eventfd; a blocked Wait returns an error.
func (e *EventFD) Close() error { return e.f.Close() }

func (e *EventFD) keepAlive() { runtime.KeepAlive(e.f) }
