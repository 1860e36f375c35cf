package boot

import (
	"errors"
	"fmt"
	"io"

	"github.com/hullvm/hull/memory"
)

// Mode is how the vCPU enters the kernel.
type Mode int

const (
	// Long64 is the Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit
	// boot protocol"): long mode, identity-mapped paging, RSI = boot_params.
	Long64 Mode = iota + 1
	// PVH32 is the PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h): 32-bit
	// protected mode, paging off, RBX = hvm_start_info.
	PVH32
)

func (m Mode) String() string {
	switch m {
	case Long64:
		return "long64"
	case PVH32:
		return "pvh32"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Guest physical layout of what Load writes. Everything below 1 MiB that Load uses is
// in one of these ranges; the e820 map reserves [EBDA, 1 MiB).
const (
	GDTAddr       memory.Addr = 0x500   // GDT: null, null, code 0x10, data 0x18, TSS 0x20 (16 bytes)
	IDTAddr       memory.Addr = 0x540   // empty IDT (limit 0): any early fault shuts the guest down
	ZeroPageAddr  memory.Addr = 0x7000  // boot_params (Long64) or hvm_start_info (PVH32)
	StackTop      memory.Addr = 0x8ff0  // initial RSP
	PML4Addr      memory.Addr = 0x9000  // PML4, PDPT, then four page directories (to 0xefff)
	CmdlineAddr   memory.Addr = 0x20000 // NUL-terminated kernel command line
	CmdlineMax                = 0x10000 // room for the command line, NUL included
	EBDAAddr      memory.Addr = 0x9fc00 // start of the reserved EBDA/VGA/BIOS area
	MPTableAddr   memory.Addr = 0xf0000 // MP floating pointer, then the MP config table
	KernelAddr    memory.Addr = 0x100000
	HighMemory    memory.Addr = 0x100000 // 1 MiB
	IdentityLimit             = 4 << 30  // Long64 page tables identity-map [0, 4 GiB) with 2 MiB pages
)

// Interrupt controller facts the MP table describes; the VMM must create the in-kernel
// IOAPIC and LAPICs to match (KVM's defaults do).
const (
	IOAPICAddr = 0xfec00000
	LAPICAddr  = 0xfee00000
	IOAPICPins = 24 // ISA IRQ n is routed to IOAPIC pin n for n in [0, 24)
	MaxCPUs    = 254
)

// Selectors in the GDT Load writes.
const (
	CodeSelector = 0x10 // __BOOT_CS
	DataSelector = 0x18 // __BOOT_DS
	TSSSelector  = 0x20
)

// Params is what to boot.
type Params struct {
	// Kernel is a bzImage (64-bit boot protocol, XLF_KERNEL_64) or an ELF32/ELF64 kernel
	// with a XEN_ELFNOTE_PHYS32_ENTRY note (PVH), detected by its magic.
	Kernel     io.ReaderAt
	KernelSize int64
	// Initrd is optional (nil or size 0 for none).
	Initrd     io.ReaderAt
	InitrdSize int64
	// Cmdline is the kernel command line, without the NUL.
	Cmdline string
	// CPUs is the number of processor entries in the MP table (1 when zero); LAPIC ids
	// are 0..CPUs-1, the IOAPIC id is CPUs.
	CPUs int
}

// Table is a descriptor table register (GDTR, IDTR).
type Table struct {
	Base  uint64
	Limit uint16
}

// Segment is a segment register's hidden state; it mirrors struct kvm_segment.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
}

// Entry is the boot vCPU's state at the kernel's entry. Registers not named here are
// zero. Application processors are started by the guest through INIT/SIPI (in-kernel
// LAPIC) and need nothing from here.
type Entry struct {
	Mode                       Mode
	RIP, RSP, RSI, RBX, RFLAGS uint64
	CR0, CR3, CR4, EFER        uint64
	GDT, IDT                   Table
	// CS is the code segment; DS is loaded into DS, ES, FS, GS and SS.
	CS, DS Segment
	// TR is a busy TSS of base 0 and limit 0x67 (VMX wants a usable TR). Leave LDTR
	// and the rest of the vCPU at KVM's reset state.
	TR Segment
	// KernelEnd is the first address past the memory the kernel claims (for a bzImage,
	// its runtime start plus init_size); the initrd lies above it.
	KernelEnd memory.Addr
	// Initrd is where the initrd was placed (zero size when there is none).
	InitrdAddr memory.Addr
	InitrdSize uint64
}

// Errors callers may branch on; every Load error wraps one of them or an I/O error.
var (
	ErrFormat   = errors.New("not a bzImage or PVH ELF kernel")
	ErrBadImage = errors.New("invalid kernel image")
	ErrNoFit    = errors.New("does not fit in guest memory")
)

// Load writes the kernel, the command line, the initrd, the boot structures and the MP
// table into mem and returns the boot vCPU's entry state. mem must hold RAM from 0 up
// past 1 MiB. It never trusts the image: every size and offset is checked against the
// file and against guest memory.
func Load(mem *memory.Guest, p Params) (*Entry, error) {
	if p.Kernel == nil || p.KernelSize <= 0 {
		return nil, fmt.Errorf("load kernel: %w: empty", ErrFormat)
	}
	if p.InitrdSize < 0 || (p.Initrd == nil && p.InitrdSize > 0) {
		return nil, fmt.Errorf("load initrd: size %d with reader %v: want a reader and a size >= 0", p.InitrdSize, p.Initrd != nil)
	}
	cpus := p.CPUs
	if cpus == 0 {
		cpus = 1
	}
	if cpus < 0 || cpus > MaxCPUs {
		return nil, fmt.Errorf("load: %d CPUs: want 1 to %d", p.CPUs, MaxCPUs)
	}
	if err := checkLowMemory(mem); err != nil {
		return nil, err
	}
	var magic [4]byte
	if _, err := p.Kernel.ReadAt(magic[:], 0); err != nil {
		return nil, fmt.Errorf("load kernel: read magic: %w", errEOF(err))
	}
	var (
		e   *Entry
		err error
	)
	if string(magic[:]) == elfMagic {
		e, err = loadPVH(mem, p)
	} else {
		e, err = loadBzImage(mem, p)
	}
	if err != nil {
		return nil, err
	}
	if err := writeMPTable(mem, cpus); err != nil {
		return nil, fmt.Errorf("write MP table: %w", err)
	}
	return e, nil
}

// checkLowMemory makes sure the fixed low structures and 1 MiB onwards are RAM.
func checkLowMemory(mem *memory.Guest) error {
	if _, err := mem.Slice(0, uint64(HighMemory)+0x1000); err != nil {
		return fmt.Errorf("load: guest memory must be RAM from 0 past 1 MiB: %w: %w", ErrNoFit, err)
	}
	return nil
}

// errEOF turns a short read into ErrBadImage (a truncated image).
func errEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrBadImage)
	}
	return err
}
