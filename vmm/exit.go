package vmm

import (
	"errors"
	"fmt"
)

// DebugExitPort is hull's test-guest exit port, compatible with QEMU's isa-debug-exit
// (iobase=0xf4, iosize=1): a guest that writes the byte v to it ends the VM with exit
// status (v<<1)|1, so the same test guest runs under both. With the in-kernel irqchip a
// guest's hlt blocks inside KVM, so a freestanding guest ends through this port (or an
// i8042 reset), never by halting.
const DebugExitPort = 0xf4

// Reason says why a machine stopped without error.
type Reason int

// Reasons for a clean stop.
const (
	// Reset: the guest asked for a reset (i8042 0xFE with reboot=k, or a KVM system
	// event of type reset). hull does not reboot a microVM: reset ends it.
	Reset Reason = iota + 1
	// Poweroff: a KVM system event of type shutdown (ACPI poweroff).
	Poweroff
	// DebugExit: the guest wrote to DebugExitPort.
	DebugExit
	// Canceled: the context passed to Run was canceled.
	Canceled
)

func (r Reason) String() string {
	switch r {
	case Reset:
		return "reset"
	case Poweroff:
		return "poweroff"
	case DebugExit:
		return "debug-exit"
	case Canceled:
		return "canceled"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Exit is how a machine ended.
type Exit struct {
	Reason Reason
	// Code is the exit status for a process that ran the VM: 0 for Reset and Poweroff,
	// (v<<1)|1 for DebugExit (as QEMU's isa-debug-exit), 130 for Canceled.
	Code int
	// Value is the byte written to DebugExitPort (DebugExit only).
	Value byte
}

// Errors Run returns for a guest that failed; callers branch on them with errors.Is.
var (
	// ErrTripleFault: KVM_EXIT_SHUTDOWN, the guest triple-faulted.
	ErrTripleFault = errors.New("guest triple-faulted")
	// ErrUnhandledExit: a vCPU exit the VMM cannot handle (internal error, failed entry,
	// an exit reason it does not know).
	ErrUnhandledExit = errors.New("unhandled vCPU exit")
)

// VCPUError is a guest failure on one vCPU, with a summary of its registers.
type VCPUError struct {
	VCPU int
	Err  error  // ErrTripleFault, ErrUnhandledExit or a KVM error
	Exit string // the exit as KVM described it
	Regs string // register dump summary (rip, rsp, cr0, cr3, cr4, efer, cs...)
}

func (e *VCPUError) Error() string {
	s := fmt.Sprintf("vcpu %d: %v", e.VCPU, e.Err)
	if e.Exit != "" {
		s += ": " + e.Exit
	}
	if e.Regs != "" {
		s += " [" + e.Regs + "]"
	}
	return s
}

func (e *VCPUError) Unwrap() error { return e.Err }
