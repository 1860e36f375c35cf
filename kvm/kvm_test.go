package kvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/internal/testenv"
)

// openVM opens /dev/kvm and creates a VM with 64 KiB of RAM at 0 holding code at
// 0x1000, and one vCPU in real mode about to run it.
func openVM(t *testing.T, code []byte, irqchip bool) (*System, *VM, *VCPU) {
	t.Helper()
	testenv.RequireKVM(t)
	sys, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	mem, err := unix.Mmap(-1, 0, 0x10000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	copy(mem[0x1000:], code)
	if err := vm.SetTSSAddr(0xfffbd000); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetMemory(0, 0, mem); err != nil {
		t.Fatal(err)
	}
	if irqchip {
		if err := vm.CreateIRQChip(); err != nil {
			t.Fatal(err)
		}
		if err := vm.CreatePIT2(); err != nil {
			t.Fatal(err)
		}
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close() })
	s, err := cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	s.CS.Base, s.CS.Selector = 0, 0
	s.DS.Base, s.DS.Selector = 0, 0
	if err := cpu.SetSregs(s); err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetRegs(Regs{RIP: 0x1000, RFLAGS: 2}); err != nil {
		t.Fatal(err)
	}
	return sys, vm, cpu
}

// realModeGuest does port I/O, MMIO and an ioeventfd-absorbed write, then writes to
// port 0xf4.
var realModeGuest = []byte{
	0xba, 0xf8, 0x03, // mov dx, 0x3f8
	0xb0, 'A', // mov al, 'A'
	0xee,             // out dx, al
	0xec,             // in al, dx
	0xbb, 0x00, 0x20, // mov bx, 0x2000
	0x8e, 0xdb, // mov ds, bx          (ds base 0x20000: no memory slot there)
	0xa2, 0x00, 0x00, // mov [0], al
	0xc6, 0x06, 0x08, 0x00, 7, // mov byte [8], 7   (ioeventfd, datamatch 7)
	0xc6, 0x06, 0x08, 0x00, 9, // mov byte [8], 9   (no match: an exit)
	0xa0, 0x10, 0x00, // mov al, [0x10]
	0xe6, 0xf4, // out 0xf4, al
	0xeb, 0xfe, // jmp $
}

func TestRealModeExits(t *testing.T) {
	for _, irqchip := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-irqchip", true: "irqchip"}[irqchip], func(t *testing.T) {
			_, vm, cpu := openVM(t, realModeGuest, irqchip)
			ev, err := NewEventFD()
			if err != nil {
				t.Fatal(err)
			}
			defer ev.Close()
			if err := vm.IOEventFD(ev, IOEvent{Addr: 0x20008, Len: 1, Match: true, Data: 7}); err != nil {
				t.Fatal(err)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			want := []struct {
				reason Reason
				addr   uint64 // port or MMIO address
				write  bool
				data   []byte // written, or supplied for a read
			}{
				{ExitIO, 0x3f8, true, []byte{'A'}},
				{ExitIO, 0x3f8, false, []byte{'B'}},
				{ExitMMIO, 0x20000, true, []byte{'B'}},
				{ExitMMIO, 0x20008, true, []byte{9}},
				{ExitMMIO, 0x20010, false, []byte{0x5a}},
				{ExitIO, 0xf4, true, []byte{0x5a}},
			}
			for i, w := range want {
				e, err := cpu.Run()
				if err != nil {
					t.Fatalf("exit %d: %v", i, err)
				}
				if e.Reason != w.reason {
					r, _ := cpu.Regs()
					t.Fatalf("exit %d: %v, want %v (rip %#x)", i, e, w.reason, r.RIP)
				}
				var addr uint64
				var write bool
				var data []byte
				switch e.Reason {
				case ExitIO:
					addr, write, data = uint64(e.IO.Port), e.IO.Out, e.IO.Data
				case ExitMMIO:
					addr, write, data = e.MMIO.Addr, e.MMIO.Write, e.MMIO.Data
				}
				if addr != w.addr || write != w.write || len(data) != len(w.data) {
					t.Fatalf("exit %d: %v, want addr %#x write %v len %d", i, e, w.addr, w.write, len(w.data))
				}
				if write && !bytes.Equal(data, w.data) {
					t.Fatalf("exit %d: wrote %#x, want %#x", i, data, w.data)
				}
				if !write {
					copy(data, w.data)
				}
			}
			n, err := ev.Wait()
			if err != nil || n != 1 {
				t.Fatalf("ioeventfd count = %d, %v; want 1", n, err)
			}
		})
	}
}

func TestKickInterruptsRun(t *testing.T) {
	_, _, cpu := openVM(t, []byte{0xeb, 0xfe}, true) // jmp $
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu.Bind()
		for {
			e, err := cpu.Run()
			if err != nil {
				done <- err
				return
			}
			if e.Reason == ExitIntr {
				done <- nil
				return
			}
		}
	}()
	// Kick until the vCPU notices: the first kick may land before Bind.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := cpu.Kick(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-tick.C:
		}
	}
}

func TestCapsAndCPUID(t *testing.T) {
	testenv.RequireKVM(t)
	sys, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if err := sys.Require(CapUserMemory, CapIRQChip, CapIOEventFD, CapIRQFD, CapPIT2, CapSetTSSAddr, CapExtCPUID, CapImmediateExit); err != nil {
		t.Fatal(err)
	}
	if err := sys.Require(Cap(100000)); !errors.Is(err, ErrMissingCap) {
		t.Fatalf("Require(unknown cap) = %v, want ErrMissingCap", err)
	}
	es, err := sys.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	var vendor []byte
	for _, e := range es {
		if e.Function == 0 {
			vendor = binary.LittleEndian.AppendUint32(vendor, e.EBX)
			vendor = binary.LittleEndian.AppendUint32(vendor, e.EDX)
			vendor = binary.LittleEndian.AppendUint32(vendor, e.ECX)
		}
	}
	if len(vendor) != 12 {
		t.Fatalf("no CPUID leaf 0 among %d supported entries", len(es))
	}
	t.Logf("%d CPUID entries, vendor %q", len(es), vendor)
}

func TestVCPUState(t *testing.T) {
	_, vm, cpu := openVM(t, []byte{0xeb, 0xfe}, true)
	es, err := func() ([]CPUIDEntry, error) {
		sys, err := Open()
		if err != nil {
			return nil, err
		}
		defer sys.Close()
		return sys.SupportedCPUID()
	}()
	if err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetCPUID(es); err != nil {
		t.Fatal(err)
	}
	const miscEnable = 0x1a0
	if err := cpu.SetMSRs([]MSR{{Index: miscEnable, Data: 1}}); err != nil {
		t.Fatal(err)
	}
	ms, err := cpu.MSRs(miscEnable)
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Data&1 != 1 {
		t.Fatalf("IA32_MISC_ENABLE = %#x, want fast strings set", ms[0].Data)
	}
	want := Regs{RAX: 1, RBX: 2, RSP: 0x8000, RIP: 0x1000, RFLAGS: 2}
	if err := cpu.SetRegs(want); err != nil {
		t.Fatal(err)
	}
	got, err := cpu.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("regs = %+v, want %+v", got, want)
	}
	l, err := cpu.LAPIC()
	if err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetLAPIC(l); err != nil {
		t.Fatal(err)
	}
	for _, level := range []bool{true, false} {
		if err := vm.IRQLine(4, level); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := NewEventFD()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if err := vm.IRQFD(ev, 5); err != nil {
		t.Fatal(err)
	}
	if err := ev.Signal(); err != nil {
		t.Fatal(err)
	}
}
