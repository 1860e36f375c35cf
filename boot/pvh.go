package boot

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hullvm/hull/memory"
)

// ELF (System V gABI) and PVH constants.
const (
	elfMagic    = "\x7fELF"
	elfClass32  = 1
	elfClass64  = 2
	elfData2LSB = 1
	etExec      = 2
	em386       = 3
	emX8664     = 62
	ptLoad      = 1
	ptNote      = 4

	maxPhdrs    = 256     // far more than any kernel has; bounds the work per image
	maxNoteSize = 1 << 20 // bytes of one PT_NOTE segment we read

	// xen/include/public/elfnote.h
	xenNoteName      = "Xen"
	xenElfnotePhys32 = 18
	startInfoMagic   = 0x336ec578 // xen/include/public/arch-x86/hvm/start_info.h
	startInfoVersion = 1
	startInfoSize    = 56
	modlistEntrySize = 32
	memmapEntrySize  = 24
	modlistAddr      = ZeroPageAddr + 0x40
	memmapAddr       = ZeroPageAddr + 0x80
	maxMemmapEntries = (bpSize - 0x80) / memmapEntrySize
	pvhInitrdLimit   = 1<<32 - 1
)

// phdr is a program header, widened to 64 bits.
type phdr struct {
	typ                   uint32
	off, paddr            uint64
	filesz, memsz, palign uint64
}

// elfImage is what Load needs from an ELF kernel.
type elfImage struct {
	class uint8
	loads []phdr
	entry uint64 // from the PVH note; 0 when there is none
}

// parseELF reads the ELF header, the program headers and the PVH entry note of a kernel
// of n bytes.
func parseELF(r io.ReaderAt, n int64) (*elfImage, error) {
	le := binary.LittleEndian
	var h [64]byte
	if n < 52 {
		return nil, fmt.Errorf("%w: %d bytes is too short for an ELF header", ErrBadImage, n)
	}
	if err := readFull(r, h[:min(n, 64)], 0); err != nil {
		return nil, fmt.Errorf("read ELF header: %w", err)
	}
	img := &elfImage{class: h[4]}
	if h[5] != elfData2LSB {
		return nil, fmt.Errorf("%w: ELF data encoding %d: want little-endian", ErrBadImage, h[5])
	}
	var (
		typ, machine     = le.Uint16(h[16:]), le.Uint16(h[18:])
		phoff            uint64
		phentsize, phnum uint16
		wantEntsize      uint16
	)
	switch img.class {
	case elfClass32:
		phoff = uint64(le.Uint32(h[28:]))
		phentsize, phnum = le.Uint16(h[42:]), le.Uint16(h[44:])
		wantEntsize = 32
	case elfClass64:
		if n < 64 {
			return nil, fmt.Errorf("%w: %d bytes is too short for an ELF64 header", ErrBadImage, n)
		}
		phoff = le.Uint64(h[32:])
		phentsize, phnum = le.Uint16(h[54:]), le.Uint16(h[56:])
		wantEntsize = 56
	default:
		return nil, fmt.Errorf("%w: ELF class %d", ErrBadImage, img.class)
	}
	if typ != etExec {
		return nil, fmt.Errorf("%w: ELF type %d: want an executable (ET_EXEC)", ErrBadImage, typ)
	}
	if machine != em386 && machine != emX8664 {
		return nil, fmt.Errorf("%w: ELF machine %d: want x86", ErrBadImage, machine)
	}
	if phentsize != wantEntsize {
		return nil, fmt.Errorf("%w: program header size %d: want %d", ErrBadImage, phentsize, wantEntsize)
	}
	if phnum == 0 || phnum > maxPhdrs {
		return nil, fmt.Errorf("%w: %d program headers: want 1 to %d", ErrBadImage, phnum, maxPhdrs)
	}
	size := uint64(phnum) * uint64(phentsize)
	if phoff > uint64(n) || size > uint64(n)-phoff {
		return nil, fmt.Errorf("%w: program headers at %#x run past the end of the file", ErrBadImage, phoff)
	}
	tab := make([]byte, size)
	if err := readFull(r, tab, int64(phoff)); err != nil {
		return nil, fmt.Errorf("read program headers: %w", err)
	}
	for i := range int(phnum) {
		b := tab[i*int(phentsize):]
		var ph phdr
		if img.class == elfClass32 {
			ph = phdr{typ: le.Uint32(b[0:]), off: uint64(le.Uint32(b[4:])), paddr: uint64(le.Uint32(b[12:])),
				filesz: uint64(le.Uint32(b[16:])), memsz: uint64(le.Uint32(b[20:])), palign: uint64(le.Uint32(b[28:]))}
		} else {
			ph = phdr{typ: le.Uint32(b[0:]), off: le.Uint64(b[8:]), paddr: le.Uint64(b[24:]),
				filesz: le.Uint64(b[32:]), memsz: le.Uint64(b[40:]), palign: le.Uint64(b[48:])}
		}
		if ph.typ != ptLoad && ph.typ != ptNote {
			continue
		}
		if ph.off > uint64(n) || ph.filesz > uint64(n)-ph.off {
			return nil, fmt.Errorf("%w: program header %d: %d bytes at %#x run past the end of the file", ErrBadImage, i, ph.filesz, ph.off)
		}
		if ph.typ == ptLoad {
			if ph.filesz > ph.memsz {
				return nil, fmt.Errorf("%w: program header %d: file size %d > memory size %d", ErrBadImage, i, ph.filesz, ph.memsz)
			}
			if ph.paddr+ph.memsz < ph.paddr {
				return nil, fmt.Errorf("%w: program header %d: segment at %#x wraps the address space", ErrBadImage, i, ph.paddr)
			}
			if ph.memsz > 0 {
				img.loads = append(img.loads, ph)
			}
			continue
		}
		if ph.filesz > maxNoteSize {
			return nil, fmt.Errorf("%w: program header %d: note segment of %d bytes", ErrBadImage, i, ph.filesz)
		}
		note := make([]byte, ph.filesz)
		if err := readFull(r, note, int64(ph.off)); err != nil {
			return nil, fmt.Errorf("read notes: %w", err)
		}
		entry, err := pvhEntry(note, ph.palign)
		if err != nil {
			return nil, fmt.Errorf("program header %d: %w", i, err)
		}
		if entry != 0 {
			img.entry = entry
		}
	}
	return img, nil
}

// pvhEntry scans a PT_NOTE segment for XEN_ELFNOTE_PHYS32_ENTRY and returns its value,
// or 0. Names and descriptors are padded to 4 bytes (8 when the segment is 8-aligned).
func pvhEntry(b []byte, palign uint64) (uint64, error) {
	le := binary.LittleEndian
	pad := uint64(4)
	if palign == 8 {
		pad = 8
	}
	up := func(x uint64) uint64 { return (x + pad - 1) &^ (pad - 1) }
	for off := uint64(0); uint64(len(b))-off >= 12; {
		namesz, descsz, typ := uint64(le.Uint32(b[off:])), uint64(le.Uint32(b[off+4:])), le.Uint32(b[off+8:])
		off += 12
		if namesz > uint64(len(b))-off {
			return 0, fmt.Errorf("%w: note name of %d bytes runs past its segment", ErrBadImage, namesz)
		}
		name := b[off : off+namesz]
		// Offsets stay below len(b) < 2^32, so the rounding cannot overflow.
		off = min(up(off+namesz), uint64(len(b)))
		if descsz > uint64(len(b))-off {
			return 0, fmt.Errorf("%w: note descriptor of %d bytes runs past its segment", ErrBadImage, descsz)
		}
		desc := b[off : off+descsz]
		off = min(up(off+descsz), uint64(len(b)))
		if typ != xenElfnotePhys32 || string(trimNUL(name)) != xenNoteName {
			continue
		}
		switch len(desc) {
		case 4:
			return uint64(le.Uint32(desc)), nil
		case 8:
			v := le.Uint64(desc)
			if v > 1<<32-1 {
				return 0, fmt.Errorf("%w: PVH entry %#x is above 4 GiB", ErrBadImage, v)
			}
			return v, nil
		default:
			return 0, fmt.Errorf("%w: PVH entry note of %d bytes: want 4 or 8", ErrBadImage, len(desc))
		}
	}
	return 0, nil
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// lowUsed are the ranges below 1 MiB Load writes; no ELF segment may overlap them.
func lowUsed() [][2]uint64 {
	return [][2]uint64{
		{uint64(GDTAddr), uint64(IDTAddr) + 8},
		{uint64(ZeroPageAddr), uint64(PML4Addr) + (2+IdentityLimit>>30)*pageSize},
		{uint64(CmdlineAddr), uint64(CmdlineAddr) + CmdlineMax},
		{uint64(EBDAAddr), uint64(HighMemory)},
	}
}

func overlaps(a0, a1, b0, b1 uint64) bool { return a0 < b1 && b0 < a1 }

// loadPVH loads an ELF kernel with a PVH entry note.
func loadPVH(mem *memory.Guest, p Params) (*Entry, error) {
	img, err := parseELF(p.Kernel, p.KernelSize)
	if err != nil {
		return nil, fmt.Errorf("load ELF kernel: %w", err)
	}
	if img.entry == 0 {
		return nil, fmt.Errorf("load ELF kernel: %w: no XEN_ELFNOTE_PHYS32_ENTRY note: build the kernel with CONFIG_PVH=y, or pass the bzImage", ErrBadImage)
	}
	if len(img.loads) == 0 {
		return nil, fmt.Errorf("load ELF kernel: %w: no loadable segment", ErrBadImage)
	}
	// Check every segment before writing any.
	var end uint64
	entryIn := false
	for i, s := range img.loads {
		lo, hi := s.paddr, s.paddr+s.memsz
		if _, err := mem.Slice(memory.Addr(lo), s.memsz); err != nil {
			return nil, fmt.Errorf("load ELF kernel: segment [%#x, %#x): %w: %w", lo, hi, ErrNoFit, err)
		}
		for _, u := range lowUsed() {
			if overlaps(lo, hi, u[0], u[1]) {
				return nil, fmt.Errorf("load ELF kernel: %w: segment [%#x, %#x) overlaps the boot structures at [%#x, %#x): link the kernel at 1 MiB or above", ErrBadImage, lo, hi, u[0], u[1])
			}
		}
		for j, t := range img.loads[:i] {
			if overlaps(lo, hi, t.paddr, t.paddr+t.memsz) {
				return nil, fmt.Errorf("load ELF kernel: %w: segments %d and %d overlap", ErrBadImage, j, i)
			}
		}
		end = max(end, hi)
		entryIn = entryIn || (img.entry >= lo && img.entry < hi)
	}
	if !entryIn {
		return nil, fmt.Errorf("load ELF kernel: %w: PVH entry %#x lies outside every loaded segment", ErrBadImage, img.entry)
	}
	for _, s := range img.loads {
		dst, err := mem.Slice(memory.Addr(s.paddr), s.memsz)
		if err != nil {
			return nil, fmt.Errorf("load ELF kernel: %w", err)
		}
		if err := readFull(p.Kernel, dst[:s.filesz], int64(s.off)); err != nil {
			return nil, fmt.Errorf("load ELF kernel: read segment at %#x: %w", s.off, err)
		}
		clear(dst[s.filesz:])
	}

	e := &Entry{Mode: PVH32, KernelEnd: memory.Addr(end)}
	if err := loadCommon(mem, p, e, pvhInitrdLimit); err != nil {
		return nil, fmt.Errorf("load ELF kernel: %w", err)
	}
	if err := writeStartInfo(mem, e); err != nil {
		return nil, fmt.Errorf("load ELF kernel: %w", err)
	}
	gdt := gdtFor(PVH32)
	if err := writeGDT(mem, gdt); err != nil {
		return nil, fmt.Errorf("load ELF kernel: %w", err)
	}
	setSegments(e, gdt)
	e.RIP = img.entry
	e.RBX = uint64(ZeroPageAddr)
	e.CR0 = cr0PE | cr0ET
	return e, nil
}

// writeStartInfo writes struct hvm_start_info (version 1), the module list (the
// initrd) and the memory map into the zero page.
func writeStartInfo(mem *memory.Guest, e *Entry) error {
	b, err := mem.Slice(ZeroPageAddr, bpSize)
	if err != nil {
		return fmt.Errorf("start info: %w", err)
	}
	clear(b)
	m := e820(mem)
	if len(m) > maxMemmapEntries {
		return fmt.Errorf("%d memory ranges: the start info page holds %d", len(m), maxMemmapEntries)
	}
	le := binary.LittleEndian
	le.PutUint32(b[0:], startInfoMagic)
	le.PutUint32(b[4:], startInfoVersion)
	if e.InitrdSize > 0 {
		le.PutUint32(b[12:], 1)
		le.PutUint64(b[16:], uint64(modlistAddr))
		mod := b[modlistAddr-ZeroPageAddr:]
		le.PutUint64(mod[0:], uint64(e.InitrdAddr))
		le.PutUint64(mod[8:], e.InitrdSize)
	}
	le.PutUint64(b[24:], uint64(CmdlineAddr))
	le.PutUint64(b[40:], uint64(memmapAddr))
	le.PutUint32(b[48:], uint32(len(m)))
	for i, r := range m {
		t := b[memmapAddr-ZeroPageAddr+memory.Addr(memmapEntrySize*i):]
		le.PutUint64(t[0:], r.Addr)
		le.PutUint64(t[8:], r.Size)
		le.PutUint32(t[16:], r.Type)
	}
	return nil
}
