package vmm

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/hullvm/hull/boot"
	"github.com/hullvm/hull/kvm"
)

// MSRs every vCPU starts with (Intel SDM vol. 4), as Linux expects to find them after
// firmware: fast strings on, MTRRs on with write-back as the default type, and the
// syscall and sysenter MSRs cleared.
const (
	msrSysenterCS   = 0x174
	msrSysenterESP  = 0x175
	msrSysenterEIP  = 0x176
	msrMiscEnable   = 0x1a0
	msrMTRRDefType  = 0x2ff
	msrSTAR         = 0xc000_0081
	msrLSTAR        = 0xc000_0082
	msrCSTAR        = 0xc000_0083
	msrSyscallMask  = 0xc000_0084
	msrKernelGSBase = 0xc000_0102
	miscFastStrings = 1 << 0
	mtrrEnable      = 1 << 11
	mtrrWriteBack   = 6
	lapicLVT0       = 0x350 // LVT LINT0 register in the LAPIC page
	lapicLVT1       = 0x360
	lvtDeliveryMask = 0x700
	lvtExtINT       = 0x700
	lvtNMI          = 0x400
)

var bootMSRs = []kvm.MSR{
	{Index: msrSysenterCS}, {Index: msrSysenterESP}, {Index: msrSysenterEIP},
	{Index: msrSTAR}, {Index: msrLSTAR}, {Index: msrCSTAR}, {Index: msrSyscallMask},
	{Index: msrKernelGSBase},
	{Index: msrMiscEnable, Data: miscFastStrings},
	{Index: msrMTRRDefType, Data: mtrrEnable | mtrrWriteBack},
}

// createVCPUs creates the vCPUs with their CPUID, MSRs and LAPIC LINT pins once chip
// says the VM has its irqchip (doing nothing if it says it never will). The boot vCPU
// is put at the kernel's entry later (enter); the others wait, inside KVM, for the
// guest's INIT/SIPI.
func (m *Machine) createVCPUs(chip <-chan bool) error {
	supported, err := m.sys.SupportedCPUID()
	if !<-chip {
		return nil
	}
	if err != nil {
		return err
	}
	n := m.cfg.cpus()
	for id := range n {
		v, err := m.vm.CreateVCPU(id)
		if err != nil {
			return err
		}
		m.vcpus = append(m.vcpus, v)
	}
	var h hostCPU
	if c, _ := m.sys.Check(kvm.CapGetTSCKHz); c > 0 {
		if k, err := m.vcpus[0].TSCKHz(); err == nil {
			h.tscKHz = k
		}
	}
	if c, _ := m.sys.Check(kvm.CapTSCDeadlineTimer); c > 0 {
		h.tscDeadline = true
	}
	for id, v := range m.vcpus {
		if err := v.SetCPUID(cpuidFor(supported, id, n, h)); err != nil {
			return err
		}
		if err := v.SetMSRs(bootMSRs); err != nil {
			return err
		}
		if err := setLINT(v); err != nil {
			return err
		}
	}
	return nil
}

// setLINT wires the LAPIC's LINT0 to the PIC (ExtINT) and LINT1 to NMI, as the MP
// table says and as a PC's firmware leaves them.
func setLINT(v *kvm.VCPU) error {
	l, err := v.LAPIC()
	if err != nil {
		return err
	}
	set := func(off int, mode uint32) {
		r := uint32(l.Regs[off]) | uint32(l.Regs[off+1])<<8 | uint32(l.Regs[off+2])<<16 | uint32(l.Regs[off+3])<<24
		r = r&^lvtDeliveryMask | mode
		l.Regs[off], l.Regs[off+1], l.Regs[off+2], l.Regs[off+3] = byte(r), byte(r>>8), byte(r>>16), byte(r>>24)
	}
	set(lapicLVT0, lvtExtINT)
	set(lapicLVT1, lvtNMI)
	return v.SetLAPIC(l)
}

func segment(s boot.Segment) kvm.Segment {
	return kvm.Segment{Base: s.Base, Limit: s.Limit, Selector: s.Selector, Type: s.Type,
		Present: s.Present, DPL: s.DPL, DB: s.DB, S: s.S, L: s.L, G: s.G, AVL: s.AVL,
		Unusable: s.Unusable}
}

// enter sets the boot vCPU's registers to the kernel entry boot described.
func enter(v *kvm.VCPU, e *boot.Entry) error {
	s, err := v.Sregs()
	if err != nil {
		return err
	}
	s.CS = segment(e.CS)
	ds := segment(e.DS)
	s.DS, s.ES, s.FS, s.GS, s.SS = ds, ds, ds, ds, ds
	s.TR = segment(e.TR)
	s.GDT = kvm.DTable{Base: e.GDT.Base, Limit: e.GDT.Limit}
	s.IDT = kvm.DTable{Base: e.IDT.Base, Limit: e.IDT.Limit}
	s.CR0, s.CR3, s.CR4, s.EFER = e.CR0, e.CR3, e.CR4, e.EFER
	if err := v.SetSregs(s); err != nil {
		return err
	}
	return v.SetRegs(kvm.Regs{RIP: e.RIP, RSP: e.RSP, RBP: e.RSP, RSI: e.RSI, RBX: e.RBX, RFLAGS: e.RFLAGS})
}

// runVCPU runs v on a locked OS thread until the machine stops or the guest fails.
func (m *Machine) runVCPU(v *kvm.VCPU) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	v.Bind()
	log := m.log.With("vcpu", v.ID())
	for {
		e, err := v.Run()
		if err != nil {
			m.finish(Exit{}, m.vcpuError(v, err, ""))
			return
		}
		m.bus.count.exits.Add(1)
		m.bus.batch.drain()
		switch e.Reason {
		case kvm.ExitIO:
			m.bus.io(&e.IO)
		case kvm.ExitMMIO:
			m.bus.mmio(&e.MMIO)
		case kvm.ExitIntr:
			// A kick, or a stray signal: stop if the machine is done.
			m.bus.count.interrupted.Add(1)
		case kvm.ExitSystemEvent:
			switch e.SystemEvent.Type {
			case kvm.SystemEventShutdown:
				m.finish(Exit{Reason: Poweroff}, nil)
			case kvm.SystemEventReset:
				m.finish(Exit{Reason: Reset}, nil)
			default:
				m.finish(Exit{}, m.vcpuError(v, ErrUnhandledExit, e.String()))
			}
		case kvm.ExitShutdown:
			m.finish(Exit{}, m.vcpuError(v, ErrTripleFault, e.String()))
		case kvm.ExitHLT:
			// Only without an in-kernel LAPIC; hull always has one.
			m.finish(Exit{}, m.vcpuError(v, ErrUnhandledExit, "guest halted"))
		default:
			log.Debug("unhandled exit", "exit", e.String())
			m.finish(Exit{}, m.vcpuError(v, ErrUnhandledExit, e.String()))
		}
		if m.stopping() {
			return
		}
	}
}

// vcpuError describes a guest failure on v with a register summary.
func (m *Machine) vcpuError(v *kvm.VCPU, err error, exit string) error {
	ve := &VCPUError{VCPU: v.ID(), Err: err, Exit: exit}
	if !errors.Is(err, ErrTripleFault) && !errors.Is(err, ErrUnhandledExit) {
		return ve
	}
	r, rerr := v.Regs()
	s, serr := v.Sregs()
	if rerr == nil && serr == nil {
		ve.Regs = fmt.Sprintf("rip=%#x rsp=%#x rflags=%#x rax=%#x cs=%#x cr0=%#x cr3=%#x cr4=%#x efer=%#x",
			r.RIP, r.RSP, r.RFLAGS, r.RAX, s.CS.Selector, s.CR0, s.CR3, s.CR4, s.EFER)
	}
	return ve
}
