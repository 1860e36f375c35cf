package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hullvm/hull/memory"
)

// Control register and EFER bits (Intel SDM vol. 3, 2.5).
const (
	cr0PE   = 1 << 0
	cr0ET   = 1 << 4
	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	eferLME = 1 << 8
	eferLMA = 1 << 10
	rflags  = 1 << 1 // the always-one bit; IF clear

	pageSize = 0x1000
)

// GDT descriptors (Intel SDM vol. 3, 3.4.5): flat 4 GiB code and data segments and a
// busy TSS of base 0 and limit 0x67, at the selectors the boot protocols expect.
const (
	descCode64 = 0x00af9b000000ffff // G, L, P, S, type 0xb (execute/read, accessed)
	descCode32 = 0x00cf9b000000ffff // G, D, P, S, type 0xb
	descData   = 0x00cf93000000ffff // G, B, P, S, type 0x3 (read/write, accessed)
	descTSS    = 0x00008b0000000067 // P, type 0xb (busy TSS); in long mode the next 8 bytes are the high base, 0
)

// gdtFor is the GDT for a mode: null, null, code (0x10), data (0x18), TSS (0x20, 16
// bytes wide in long mode).
func gdtFor(m Mode) [6]uint64 {
	code := uint64(descCode64)
	if m == PVH32 {
		code = descCode32
	}
	return [6]uint64{0, 0, code, descData, descTSS, 0}
}

// writeGDT writes the GDT and an empty IDT.
func writeGDT(mem *memory.Guest, gdt [6]uint64) error {
	b, err := mem.Slice(GDTAddr, uint64(len(gdt))*8)
	if err != nil {
		return fmt.Errorf("write GDT: %w", err)
	}
	for i, d := range gdt {
		binary.LittleEndian.PutUint64(b[8*i:], d)
	}
	idt, err := mem.Slice(IDTAddr, 8)
	if err != nil {
		return fmt.Errorf("write IDT: %w", err)
	}
	clear(idt)
	return nil
}

// segment decodes a GDT descriptor into the hidden segment state KVM takes.
func segment(desc uint64, sel uint16) Segment {
	s := Segment{
		Base:     (desc>>16)&0xffffff | (desc>>56&0xff)<<24,
		Limit:    uint32(desc&0xffff | (desc>>48&0xf)<<16),
		Selector: sel,
		Type:     uint8(desc >> 40 & 0xf),
		S:        uint8(desc >> 44 & 1),
		DPL:      uint8(desc >> 45 & 3),
		Present:  uint8(desc >> 47 & 1),
		AVL:      uint8(desc >> 52 & 1),
		L:        uint8(desc >> 53 & 1),
		DB:       uint8(desc >> 54 & 1),
		G:        uint8(desc >> 55 & 1),
	}
	if s.G == 1 {
		s.Limit = s.Limit<<12 | 0xfff
	}
	return s
}

// setSegments fills the descriptor tables, segments and the common registers.
func setSegments(e *Entry, gdt [6]uint64) {
	e.GDT = Table{Base: uint64(GDTAddr), Limit: uint16(len(gdt)*8 - 1)}
	e.IDT = Table{Base: uint64(IDTAddr), Limit: 0}
	e.CS = segment(gdt[CodeSelector/8], CodeSelector)
	e.DS = segment(gdt[DataSelector/8], DataSelector)
	e.TR = segment(gdt[TSSSelector/8], TSSSelector)
	e.RSP = uint64(StackTop)
	e.RFLAGS = rflags
}

// writePageTables identity-maps [0, IdentityLimit) with 2 MiB pages: a PML4, a PDPT
// and one page directory per GiB, from PML4Addr on. 1 GiB pages would be fewer but not
// every CPU model (qemu64) has them.
func writePageTables(mem *memory.Guest) error {
	const (
		present  = 1 << 0
		writable = 1 << 1
		huge     = 1 << 7
		gib      = IdentityLimit >> 30
	)
	b, err := mem.Slice(PML4Addr, (2+gib)*pageSize)
	if err != nil {
		return fmt.Errorf("write page tables: %w", err)
	}
	clear(b)
	le := binary.LittleEndian
	pdpt := uint64(PML4Addr) + pageSize
	le.PutUint64(b[0:], pdpt|present|writable)
	for i := range uint64(gib) {
		pd := pdpt + pageSize*(1+i)
		le.PutUint64(b[pageSize+8*i:], pd|present|writable)
		for j := range uint64(512) {
			le.PutUint64(b[(2+i)*pageSize+8*j:], i<<30|j<<21|present|writable|huge)
		}
	}
	return nil
}

// E820 types (ACPI address range types).
const (
	E820RAM      = 1
	E820Reserved = 2
)

// E820Entry is one range of the guest's memory map; it mirrors struct boot_e820_entry
// and struct hvm_memmap_table_entry (same types).
type E820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// E820 is the memory map Load hands the kernel for mem: RAM below the EBDA, the EBDA
// and the BIOS area (where the MP table lives) reserved, and every RAM byte from 1 MiB up
// (the MMIO gap below 4 GiB is simply absent). Sorted by address.
func E820(mem *memory.Guest) []E820Entry { return e820(mem) }

func e820(mem *memory.Guest) []E820Entry {
	m := []E820Entry{
		{Addr: uint64(EBDAAddr), Size: 0xa0000 - uint64(EBDAAddr), Type: E820Reserved},
		{Addr: uint64(MPTableAddr), Size: uint64(HighMemory - MPTableAddr), Type: E820Reserved},
	}
	add := func(lo, hi uint64) {
		if lo >= hi {
			return
		}
		if n := len(m); n > 2 && m[n-1].Type == E820RAM && m[n-1].Addr+m[n-1].Size == lo {
			m[n-1].Size += hi - lo
			return
		}
		m = append(m, E820Entry{Addr: lo, Size: hi - lo, Type: E820RAM})
	}
	for _, r := range mem.Regions() {
		lo, hi := uint64(r.Base), uint64(r.End())
		add(lo, min(hi, uint64(EBDAAddr)))
		add(max(lo, uint64(HighMemory)), hi)
	}
	sort.SliceStable(m, func(i, j int) bool { return m[i].Addr < m[j].Addr })
	return m
}

// loadCommon writes the command line and places the initrd above e.KernelEnd, ending at
// or below initrdMax (inclusive).
func loadCommon(mem *memory.Guest, p Params, e *Entry, initrdMax uint64) error {
	if err := writeCmdline(mem, p.Cmdline); err != nil {
		return err
	}
	if p.InitrdSize == 0 {
		return nil
	}
	size := uint64(p.InitrdSize)
	at, err := placeInitrd(mem, size, e.KernelEnd, initrdMax)
	if err != nil {
		return err
	}
	dst, err := mem.Slice(at, size)
	if err != nil {
		return fmt.Errorf("initrd at %#x: %w", uint64(at), err)
	}
	if err := readFull(p.Initrd, dst, 0); err != nil {
		return fmt.Errorf("read initrd: %w", err)
	}
	e.InitrdAddr, e.InitrdSize = at, size
	return nil
}

func writeCmdline(mem *memory.Guest, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("command line contains a NUL byte")
	}
	if len(s)+1 > CmdlineMax {
		return fmt.Errorf("command line of %d bytes: at most %d fit", len(s), CmdlineMax-1)
	}
	b, err := mem.Slice(CmdlineAddr, uint64(len(s))+1)
	if err != nil {
		return fmt.Errorf("write command line: %w", err)
	}
	copy(b, s)
	b[len(s)] = 0
	return nil
}

// placeInitrd finds the highest page-aligned place for size bytes of RAM that starts at
// or above low and ends at or below limit+1 (limit is the highest legal byte address).
func placeInitrd(mem *memory.Guest, size uint64, low memory.Addr, limit uint64) (memory.Addr, error) {
	m := e820(mem)
	for i := len(m) - 1; i >= 0; i-- {
		r := m[i]
		if r.Type != E820RAM || r.Addr < uint64(HighMemory) {
			continue
		}
		top := r.Addr + r.Size
		if limit < ^uint64(0) {
			top = min(top, limit+1)
		}
		if top < size {
			continue
		}
		start := (top - size) &^ (pageSize - 1)
		if start >= r.Addr && start >= uint64(low) {
			return memory.Addr(start), nil
		}
	}
	return 0, fmt.Errorf("initrd of %d bytes: %w above the kernel (ends at %#x) and below %#x: give the VM more memory", size, ErrNoFit, uint64(low), limit)
}

// readFull fills b from r at off; a short file is ErrBadImage.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return errEOF(err)
}
