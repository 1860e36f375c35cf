package kvm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// VM is a KVM virtual machine: its memory slots, interrupt controllers and vCPUs.
// Its methods are safe for concurrent use (each is one ioctl).
type VM struct {
	h        handle
	mmapSize int
}

// Close closes the VM's descriptor. The kernel frees the VM once its vCPUs are closed
// too.
func (vm *VM) Close() error { return vm.h.close() }

// Check is KVM_CHECK_EXTENSION on the VM, which some capabilities answer per VM.
func (vm *VM) Check(c Cap) (int, error) {
	r, err := vm.h.ioctl(ioCheckExtension, uintptr(c))
	if err != nil {
		return 0, fmt.Errorf("KVM_CHECK_EXTENSION %v: %w", c, err)
	}
	return int(r), nil
}

// SetMemory maps host memory mem at guest physical address gpa in memory slot slot
// (KVM_SET_USER_MEMORY_REGION). mem must stay mapped while the VM lives; both gpa and
// len(mem) must be page multiples.
func (vm *VM) SetMemory(slot uint32, gpa uint64, mem []byte) error {
	if len(mem) == 0 || len(mem)%4096 != 0 || gpa%4096 != 0 {
		return fmt.Errorf("memory slot %d at %#x: %d bytes: address and size must be non-zero page multiples", slot, gpa, len(mem))
	}
	r := &memoryRegion{slot: slot, guestPhysAddr: gpa, memorySize: uint64(len(mem)), userspaceAddr: hostAddr(mem)}
	if _, err := ioctlPtr(vm.h, ioSetUserMemoryRegion, r); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d at %#x (%d bytes): %w", slot, gpa, len(mem), err)
	}
	return nil
}

// SetTSSAddr places the three pages Intel VT-x needs for real-mode emulation
// (KVM_SET_TSS_ADDR); they must not overlap guest RAM or devices.
func (vm *VM) SetTSSAddr(addr uint64) error {
	if _, err := vm.h.ioctl(ioSetTSSAddr, uintptr(addr)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR %#x: %w", addr, err)
	}
	return nil
}

// SetIdentityMapAddr places the one-page identity map table VT-x uses for real mode
// (KVM_SET_IDENTITY_MAP_ADDR).
func (vm *VM) SetIdentityMapAddr(addr uint64) error {
	a := addr
	if _, err := ioctlPtr(vm.h, ioSetIdentityMapAddr, &a); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR %#x: %w", addr, err)
	}
	return nil
}

// CreateIRQChip creates the in-kernel PIC pair, IOAPIC and per-vCPU local APICs
// (KVM_CREATE_IRQCHIP). Call it before creating vCPUs.
func (vm *VM) CreateIRQChip() error {
	if _, err := vm.h.ioctl(ioCreateIRQChip, 0); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// CreatePIT2 creates the in-kernel i8254 PIT, with port 0x61 as a dummy speaker port
// (KVM_CREATE_PIT2, KVM_PIT_SPEAKER_DUMMY). Needs the irqchip.
func (vm *VM) CreatePIT2() error {
	c := &pitConfig{flags: pitSpeakerDummy}
	if _, err := ioctlPtr(vm.h, ioCreatePIT2, c); err != nil {
		return fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}
	return nil
}

// IRQLine sets the level of interrupt line irq (a GSI: ISA IRQs 0-15 reach both PIC
// and IOAPIC, 16-23 the IOAPIC) through KVM_IRQ_LINE.
func (vm *VM) IRQLine(irq uint32, high bool) error {
	l := &irqLevel{irq: irq}
	if high {
		l.level = 1
	}
	if _, err := ioctlPtr(vm.h, ioIRQLine, l); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE %d: %w", irq, err)
	}
	return nil
}

// IRQFD makes every signal of e inject an edge on gsi (KVM_IRQFD), without an exit.
func (vm *VM) IRQFD(e *EventFD, gsi uint32) error {
	r := &irqfd{fd: uint32(e.fd), gsi: gsi}
	_, err := ioctlPtr(vm.h, ioIRQFD, r)
	e.keepAlive()
	if err != nil {
		return fmt.Errorf("KVM_IRQFD gsi %d: %w", gsi, err)
	}
	return nil
}

// IOEvent describes a guest write that KVM turns into a signal of an eventfd instead
// of an exit (KVM_IOEVENTFD).
type IOEvent struct {
	Addr uint64 // guest physical (MMIO) address, or port when PIO
	Len  uint32 // access width: 1, 2, 4 or 8; 0 matches any width
	PIO  bool   // an I/O port rather than MMIO
	// Match restricts the event to writes of Data (datamatch).
	Match bool
	Data  uint64
}

// IOEventFD registers ev: matching guest writes signal e and do not exit.
func (vm *VM) IOEventFD(e *EventFD, ev IOEvent) error {
	switch ev.Len {
	case 0, 1, 2, 4, 8:
	default:
		return fmt.Errorf("ioeventfd at %#x: width %d: want 0, 1, 2, 4 or 8", ev.Addr, ev.Len)
	}
	if ev.Match && ev.Len == 0 {
		return errors.New("ioeventfd: a data match needs a width")
	}
	r := &ioeventfd{addr: ev.Addr, len: ev.Len, fd: int32(e.fd), datamatch: ev.Data}
	if ev.PIO {
		r.flags |= ioeventfdPIO
	}
	if ev.Match {
		r.flags |= ioeventfdDatamatch
	}
	_, err := ioctlPtr(vm.h, ioIOEventFD, r)
	e.keepAlive()
	if err != nil {
		return fmt.Errorf("KVM_IOEVENTFD at %#x: %w", ev.Addr, err)
	}
	return nil
}

// CreateVCPU creates vCPU id (also its initial APIC id) and maps its kvm_run page.
// With the in-kernel irqchip, vCPU 0 is the bootstrap processor and the others wait
// for an INIT/SIPI from it.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := vm.h.ioctl(ioCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	unix.CloseOnExec(int(fd))
	h := newHandle(int(fd), fmt.Sprintf("kvm-vcpu:%d", id))
	run, err := unix.Mmap(int(fd), 0, vm.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		h.close()
		return nil, fmt.Errorf("mmap kvm_run of vcpu %d: %w", id, err)
	}
	return &VCPU{h: h, id: id, run: run}, nil
}
