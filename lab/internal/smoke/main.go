// Command smoke is the nested lab's smoke test program: it opens /dev/kvm, creates a VM
// with one vCPU and 64 KiB of memory, runs a few real-mode instructions that add two
// numbers and write the sum to I/O port 0x10, then halt, and prints what the guest did:
//
//	api 12
//	out 0x10 42
//	hlt
//
// It talks to KVM through raw ioctls (golang.org/x/sys/unix), not hull's kvm package,
// so it checks the lab's /dev/kvm on its own. It runs on any KVM host, PVM included.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
}

// KVM ioctls (include/uapi/linux/kvm.h); _IO/_IOR/_IOW with KVMIO = 0xAE.
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmGetVCPUMmapSize     = 0xAE04
	kvmCreateVCPU          = 0xAE41
	kvmSetUserMemoryRegion = 0x4020AE46 // struct kvm_userspace_memory_region, 32 bytes
	kvmRun                 = 0xAE80
	kvmGetRegs             = 0x8090AE81 // struct kvm_regs, 144 bytes
	kvmSetRegs             = 0x4090AE82
	kvmGetSregs            = 0x8138AE83 // struct kvm_sregs, 312 bytes
	kvmSetSregs            = 0x4138AE84
)

// Exit reasons in kvm_run.exit_reason.
const (
	exitIO            = 2
	exitHLT           = 5
	exitMMIO          = 6
	exitShutdown      = 8
	exitFailEntry     = 9
	exitInternalError = 17
)

const (
	memSize  = 0x10000
	codeAddr = 0x1000
	port     = 0x10
	maxExits = 16 // the guest makes two; anything more is a bug, not a loop to follow
)

// code is the guest: mov al, a; add al, b; out port, al; hlt.
func code(a, b uint8) []byte { return []byte{0xB0, a, 0x04, b, 0xE6, port, 0xF4} }

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	a := fs.Uint("a", 40, "first addend (0-255)")
	b := fs.Uint("b", 2, "second addend (0-255)")
	dev := fs.String("dev", "/dev/kvm", "KVM device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *a > 255 || *b > 255 {
		return fmt.Errorf("addends must be bytes, got %d and %d", *a, *b)
	}

	kvm, err := unix.Open(*dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", *dev, err)
	}
	defer unix.Close(kvm)
	api, err := ioctl(kvm, kvmGetAPIVersion, nil)
	if err != nil {
		return fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	fmt.Fprintf(out, "api %d\n", api)

	vm, err := ioctl(kvm, kvmCreateVM, nil)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	defer unix.Close(vm)

	mem, err := unix.Mmap(-1, 0, memSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap guest memory: %w", err)
	}
	defer unix.Munmap(mem)
	copy(mem[codeAddr:], code(uint8(*a), uint8(*b)))
	region := make([]byte, 32)                               // mirrors struct kvm_userspace_memory_region
	binary.LittleEndian.PutUint64(region[8:], 0)             // guest_phys_addr
	binary.LittleEndian.PutUint64(region[16:], memSize)      // memory_size
	binary.LittleEndian.PutUint64(region[24:], address(mem)) // userspace_addr
	if _, err := ioctl(vm, kvmSetUserMemoryRegion, region); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}

	cpu, err := ioctl(vm, kvmCreateVCPU, nil)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	defer unix.Close(cpu)
	size, err := ioctl(kvm, kvmGetVCPUMmapSize, nil)
	if err != nil {
		return fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	if size < 64 {
		return fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %d bytes is too small for kvm_run", size)
	}
	krun, err := unix.Mmap(cpu, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run: %w", err)
	}
	defer unix.Munmap(krun)

	// Real mode with CS at 0, starting at codeAddr.
	sregs := make([]byte, 312) // mirrors struct kvm_sregs; cs is the first kvm_segment
	if _, err := ioctl(cpu, kvmGetSregs, sregs); err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	binary.LittleEndian.PutUint64(sregs[0:], 0)  // cs.base
	binary.LittleEndian.PutUint16(sregs[12:], 0) // cs.selector
	if _, err := ioctl(cpu, kvmSetSregs, sregs); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	regs := make([]byte, 144) // mirrors struct kvm_regs: 16 GPRs, rip, rflags
	if _, err := ioctl(cpu, kvmGetRegs, regs); err != nil {
		return fmt.Errorf("KVM_GET_REGS: %w", err)
	}
	binary.LittleEndian.PutUint64(regs[128:], codeAddr) // rip
	binary.LittleEndian.PutUint64(regs[136:], 0x2)      // rflags: reserved bit 1
	if _, err := ioctl(cpu, kvmSetRegs, regs); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}

	for range maxExits {
		if _, err := ioctl(cpu, kvmRun, nil); err != nil {
			return fmt.Errorf("KVM_RUN: %w", err)
		}
		// mirrors struct kvm_run: exit_reason at 8, the io exit at 32.
		switch reason := binary.LittleEndian.Uint32(krun[8:]); reason {
		case exitIO:
			dir, sz := krun[32], krun[33]
			p := binary.LittleEndian.Uint16(krun[34:])
			cnt := binary.LittleEndian.Uint32(krun[36:])
			off := binary.LittleEndian.Uint64(krun[40:])
			if dir != 1 || sz != 1 || cnt != 1 || off >= uint64(len(krun)) {
				return fmt.Errorf("unexpected I/O exit: dir %d size %d port %#x count %d", dir, sz, p, cnt)
			}
			fmt.Fprintf(out, "out %#x %d\n", p, krun[off])
		case exitHLT:
			fmt.Fprintln(out, "hlt")
			return nil
		case exitMMIO, exitShutdown, exitFailEntry, exitInternalError:
			return fmt.Errorf("vCPU stopped: exit reason %d", reason)
		default:
			return fmt.Errorf("unexpected exit reason %d", reason)
		}
	}
	return fmt.Errorf("guest did not halt after %d exits", maxExits)
}
