package kvm

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// VCPU is one virtual CPU. Run and the register accessors must be called from the
// goroutine that runs it (locked to its OS thread); Kick may be called from anywhere.
type VCPU struct {
	h   handle
	id  int
	run []byte       // the shared kvm_run page(s)
	tid atomic.Int32 // OS thread running this vCPU, for Kick; 0 before Bind
}

// ID is the vCPU id given to CreateVCPU.
func (v *VCPU) ID() int { return v.id }

// Close unmaps kvm_run and closes the vCPU.
func (v *VCPU) Close() error {
	var first error
	if v.run != nil {
		first = unix.Munmap(v.run)
		v.run = nil
	}
	if err := v.h.close(); err != nil && first == nil {
		first = err
	}
	return first
}

// Regs reads the general registers (KVM_GET_REGS).
func (v *VCPU) Regs() (Regs, error) {
	var r Regs
	if _, err := ioctlPtr(v.h, ioGetRegs, &r); err != nil {
		return r, fmt.Errorf("KVM_GET_REGS vcpu %d: %w", v.id, err)
	}
	return r, nil
}

// SetRegs writes the general registers (KVM_SET_REGS).
func (v *VCPU) SetRegs(r Regs) error {
	if _, err := ioctlPtr(v.h, ioSetRegs, &r); err != nil {
		return fmt.Errorf("KVM_SET_REGS vcpu %d: %w", v.id, err)
	}
	return nil
}

// Sregs reads the special registers (KVM_GET_SREGS).
func (v *VCPU) Sregs() (Sregs, error) {
	var s Sregs
	if _, err := ioctlPtr(v.h, ioGetSregs, &s); err != nil {
		return s, fmt.Errorf("KVM_GET_SREGS vcpu %d: %w", v.id, err)
	}
	return s, nil
}

// SetSregs writes the special registers (KVM_SET_SREGS).
func (v *VCPU) SetSregs(s Sregs) error {
	if _, err := ioctlPtr(v.h, ioSetSregs, &s); err != nil {
		return fmt.Errorf("KVM_SET_SREGS vcpu %d: %w", v.id, err)
	}
	return nil
}

// SetCPUID sets the CPUID leaves the guest sees (KVM_SET_CPUID2).
func (v *VCPU) SetCPUID(es []CPUIDEntry) error {
	if len(es) > maxCPUID {
		return fmt.Errorf("KVM_SET_CPUID2 vcpu %d: %d entries, at most %d", v.id, len(es), maxCPUID)
	}
	c := &cpuid{n: uint32(len(es))}
	copy(c.entries[:], es)
	if _, err := ioctlPtr(v.h, ioSetCPUID2, c); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 vcpu %d: %w", v.id, err)
	}
	return nil
}

// SetMSRs writes model-specific registers (KVM_SET_MSRS); it fails naming the first
// one KVM refused.
func (v *VCPU) SetMSRs(ms []MSR) error {
	if len(ms) > maxMSRs {
		return fmt.Errorf("KVM_SET_MSRS vcpu %d: %d entries, at most %d", v.id, len(ms), maxMSRs)
	}
	m := &msrs{n: uint32(len(ms))}
	copy(m.entries[:], ms)
	n, err := ioctlPtr(v.h, ioSetMSRs, m)
	if err != nil {
		return fmt.Errorf("KVM_SET_MSRS vcpu %d: %w", v.id, err)
	}
	if int(n) < len(ms) {
		return fmt.Errorf("KVM_SET_MSRS vcpu %d: MSR %#x refused", v.id, ms[n].Index)
	}
	return nil
}

// MSRs reads the model-specific registers named by idx (KVM_GET_MSRS).
func (v *VCPU) MSRs(idx ...uint32) ([]MSR, error) {
	if len(idx) > maxMSRs {
		return nil, fmt.Errorf("KVM_GET_MSRS vcpu %d: %d entries, at most %d", v.id, len(idx), maxMSRs)
	}
	m := &msrs{n: uint32(len(idx))}
	for i, x := range idx {
		m.entries[i].Index = x
	}
	n, err := ioctlPtr(v.h, ioGetMSRs, m)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_MSRS vcpu %d: %w", v.id, err)
	}
	if int(n) < len(idx) {
		return nil, fmt.Errorf("KVM_GET_MSRS vcpu %d: MSR %#x refused", v.id, idx[n])
	}
	return append([]MSR(nil), m.entries[:n]...), nil
}

// LAPIC reads the local APIC registers (KVM_GET_LAPIC; needs the irqchip).
func (v *VCPU) LAPIC() (*LAPIC, error) {
	l := &LAPIC{}
	if _, err := ioctlPtr(v.h, ioGetLAPIC, l); err != nil {
		return nil, fmt.Errorf("KVM_GET_LAPIC vcpu %d: %w", v.id, err)
	}
	return l, nil
}

// SetLAPIC writes the local APIC registers (KVM_SET_LAPIC).
func (v *VCPU) SetLAPIC(l *LAPIC) error {
	if _, err := ioctlPtr(v.h, ioSetLAPIC, l); err != nil {
		return fmt.Errorf("KVM_SET_LAPIC vcpu %d: %w", v.id, err)
	}
	return nil
}

// TSCKHz is the guest TSC frequency in kHz (KVM_GET_TSC_KHZ; KVM_CAP_GET_TSC_KHZ).
func (v *VCPU) TSCKHz() (uint32, error) {
	r, err := v.h.ioctl(ioGetTSCKHz, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_TSC_KHZ vcpu %d: %w", v.id, err)
	}
	return uint32(r), nil
}

// MPState is the vCPU's multiprocessing state (KVM_GET_MP_STATE): 0 runnable,
// 1 uninitialized (an AP waiting for INIT/SIPI), 2 init received, 3 halted, 4 SIPI
// received.
func (v *VCPU) MPState() (uint32, error) {
	var s uint32
	if _, err := ioctlPtr(v.h, ioGetMPState, &s); err != nil {
		return 0, fmt.Errorf("KVM_GET_MP_STATE vcpu %d: %w", v.id, err)
	}
	return s, nil
}

// Bind records the calling OS thread as the one that runs this vCPU, for Kick. Call
// it after runtime.LockOSThread, before the first Run.
func (v *VCPU) Bind() { v.tid.Store(int32(unix.Gettid())) }

// KickSignal is the signal Kick sends to the vCPU thread. The Go runtime uses SIGURG
// for preemption and tolerates spurious ones, so it needs no handler of ours; its
// arrival makes a blocked KVM_RUN return EINTR.
const KickSignal = unix.SIGURG

// Kick makes the vCPU leave KVM_RUN: it sets kvm_run.immediate_exit (so a KVM_RUN that
// has not started yet returns at once) and signals the bound thread (so one in progress
// returns). Run then reports ExitIntr, until ClearKick. Safe from any goroutine.
func (v *VCPU) Kick() error {
	setImmediateExit(v.run, true)
	tid := v.tid.Load()
	if tid == 0 {
		return nil
	}
	if err := unix.Tgkill(unix.Getpid(), int(tid), KickSignal); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kick vcpu %d: %w", v.id, err)
	}
	return nil
}

// ClearKick undoes Kick's immediate_exit so Run runs the guest again.
func (v *VCPU) ClearKick() { setImmediateExit(v.run, false) }

// Run enters the guest until its next exit (KVM_RUN) and returns the exit, parsed and
// bounds-checked. Slices in the Exit alias the kvm_run page and are valid until the
// next Run; for an IO in or an MMIO read, fill Exit.IO.Data or Exit.MMIO.Data before
// calling Run again. A signal or Kick yields ExitIntr with a nil error.
func (v *VCPU) Run() (Exit, error) {
	_, err := v.h.ioctl(ioRun, 0)
	if err != nil {
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			return Exit{Reason: ExitIntr}, nil
		}
		return Exit{}, fmt.Errorf("KVM_RUN vcpu %d: %w", v.id, err)
	}
	e, err := parseExit(v.run)
	if err != nil {
		return e, fmt.Errorf("vcpu %d: %w", v.id, err)
	}
	return e, nil
}
