package kvm

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrMissingCap is wrapped by Require when the host's KVM lacks a capability.
var ErrMissingCap = errors.New("KVM capability missing")

// System is an open /dev/kvm: the entry point of the KVM API.
type System struct {
	h        handle
	mmapSize int // of a vCPU's kvm_run, from KVM_GET_VCPU_MMAP_SIZE
}

// DevicePath is where Linux puts the KVM device.
const DevicePath = "/dev/kvm"

// Open opens /dev/kvm and checks the API version.
func Open() (*System, error) { return OpenPath(DevicePath) }

// OpenPath opens the KVM device at path and checks the API version.
func OpenPath(path string) (*System, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is KVM enabled and are you in the kvm group?)", path, err)
	}
	s := &System{h: newHandle(fd, path)}
	v, err := s.h.ioctl(ioGetAPIVersion, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("KVM API version %d, want %d", v, APIVersion)
	}
	n, err := s.h.ioctl(ioGetVCPUMmapSize, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	if n < runSize {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE is %d bytes, smaller than struct kvm_run (%d)", n, runSize)
	}
	s.mmapSize = int(n)
	return s, nil
}

// Close closes /dev/kvm. VMs created from it stay usable.
func (s *System) Close() error { return s.h.close() }

// Check returns KVM_CHECK_EXTENSION for c: 0 when absent, otherwise 1 or a
// capability-specific number.
func (s *System) Check(c Cap) (int, error) {
	r, err := s.h.ioctl(ioCheckExtension, uintptr(c))
	if err != nil {
		return 0, fmt.Errorf("KVM_CHECK_EXTENSION %v: %w", c, err)
	}
	return int(r), nil
}

// Require returns an error wrapping ErrMissingCap that names every capability in cs
// the host lacks.
func (s *System) Require(cs ...Cap) error {
	var missing []string
	for _, c := range cs {
		n, err := s.Check(c)
		if err != nil {
			return err
		}
		if n == 0 {
			missing = append(missing, c.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (the host kernel's KVM is too old or restricted)", ErrMissingCap, strings.Join(missing, ", "))
	}
	return nil
}

// SupportedCPUID returns the CPUID leaves KVM can expose to a guest
// (KVM_GET_SUPPORTED_CPUID).
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	c := &cpuid{n: maxCPUID}
	if _, err := ioctlPtr(s.h, ioGetSupportedCPUID, c); err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	if c.n > maxCPUID {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID returned %d entries, more than %d", c.n, maxCPUID)
	}
	return append([]CPUIDEntry(nil), c.entries[:c.n]...), nil
}

// CreateVM creates a VM (KVM_CREATE_VM, machine type 0).
func (s *System) CreateVM() (*VM, error) {
	fd, err := s.h.ioctl(ioCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	unix.CloseOnExec(int(fd))
	return &VM{h: newHandle(int(fd), "kvm-vm"), mmapSize: s.mmapSize}, nil
}

// IsPVM reports whether the host's KVM is PVM (the kvm_pvm module is loaded), under
// which only kernels built as PVM guests boot; freestanding guests still run.
func IsPVM() bool {
	_, err := os.Stat("/sys/module/kvm_pvm")
	return err == nil
}
