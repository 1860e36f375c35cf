package boot

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hullvm/hull/memory"
)

// Synthetic kernel images for the tests and the fuzz seed corpus.

// bzOpts describes a synthetic bzImage; zero fields take the defaults of bzDefaults.
type bzOpts struct {
	setupSects  byte
	version     uint16
	xloadflags  uint16
	loadflags   byte
	hdrLen      byte // byte at 0x201
	payload     int
	syssize     uint32 // 0: computed from payload
	align       uint32
	relocatable byte
	pref        uint64
	initSize    uint32
	cmdlineSize uint32
	initrdMax   uint32
}

func bzDefaults() bzOpts {
	return bzOpts{
		setupSects: 1, version: 0x020f, xloadflags: xlfKernel64 | 1<<1, loadflags: loadedHigh,
		hdrLen: 0x6a, payload: 0x3000, align: 0x200000, relocatable: 1, pref: 0x1000000,
		initSize: 0x400000, cmdlineSize: 2047, initrdMax: 0x7fffffff,
	}
}

// payloadByte is the content of byte i of a synthetic kernel's protected-mode part.
func payloadByte(i int) byte { return byte(i*7 + i>>8) }

func makeBzImage(o bzOpts) []byte {
	sects := int(o.setupSects)
	if sects == 0 {
		sects = 4
	}
	setup := (sects + 1) * 512
	b := make([]byte, setup+o.payload)
	le := binary.LittleEndian
	b[bpSetupSects] = o.setupSects
	sys := o.syssize
	if sys == 0 {
		sys = uint32((o.payload + 15) / 16)
	}
	le.PutUint32(b[bpSyssize:], sys)
	le.PutUint16(b[bpBootFlag:], bootFlag)
	b[bpJump], b[bpJump+1] = 0xeb, o.hdrLen
	copy(b[bpHeader:], hdrMagic)
	le.PutUint16(b[bpVersion:], o.version)
	b[bpLoadflags] = o.loadflags
	le.PutUint32(b[bpInitrdAddrMax:], o.initrdMax)
	le.PutUint32(b[bpKernelAlign:], o.align)
	b[bpRelocatable] = o.relocatable
	le.PutUint16(b[bpXloadflags:], o.xloadflags)
	le.PutUint32(b[bpCmdlineSize:], o.cmdlineSize)
	le.PutUint64(b[bpPrefAddress:], o.pref)
	le.PutUint32(b[bpInitSize:], o.initSize)
	b[0x26c] = 0xee // past the header (0x202+0x6a): must not reach boot_params
	for i := range o.payload {
		b[setup+i] = payloadByte(i)
	}
	return b
}

// seg is one PT_LOAD segment of a synthetic ELF kernel.
type seg struct {
	paddr  uint64
	data   []byte
	memsz  uint64
	offset int64 // 0: placed after the headers; otherwise forced (to make bad images)
}

// elfOpts describes a synthetic ELF kernel.
type elfOpts struct {
	class    byte // elfClass32 or elfClass64
	segs     []seg
	entry    uint64 // PVH note value
	descSize int    // 4 or 8; 0 for no PVH note
	noteAlgn uint64 // p_align of the PT_NOTE segment (4 or 8)
	phnum    int    // 0: computed
	phoff    int64  // 0: right after the ELF header
}

func makeELF(o elfOpts) []byte {
	le := binary.LittleEndian
	ehsize, phsize := 52, 32
	if o.class == elfClass64 {
		ehsize, phsize = 64, 56
	}
	align := o.noteAlgn
	if align == 0 {
		align = 4
	}
	pad := func(b []byte) []byte {
		for uint64(len(b))%align != 0 {
			b = append(b, 0)
		}
		return b
	}
	// Notes: an unrelated one first, then the PVH entry.
	var notes []byte
	note := func(name string, typ uint32, desc []byte) {
		var h [12]byte
		le.PutUint32(h[0:], uint32(len(name)+1))
		le.PutUint32(h[4:], uint32(len(desc)))
		le.PutUint32(h[8:], typ)
		notes = append(notes, h[:]...)
		notes = pad(append(notes, append([]byte(name), 0)...))
		notes = pad(append(notes, desc...))
	}
	note("Linux", 1, []byte{1, 2, 3, 4, 5})
	if o.descSize > 0 {
		d := make([]byte, o.descSize)
		if o.descSize == 8 {
			le.PutUint64(d, o.entry)
		} else {
			le.PutUint32(d, uint32(o.entry))
		}
		note(xenNoteName, xenElfnotePhys32, d)
	}
	nph := len(o.segs) + 1
	phoff := int64(ehsize)
	if o.phoff != 0 {
		phoff = o.phoff
	}
	var buf bytes.Buffer
	hdr := make([]byte, ehsize)
	copy(hdr, elfMagic)
	hdr[4], hdr[5], hdr[6] = o.class, elfData2LSB, 1
	le.PutUint16(hdr[16:], etExec)
	phnum := nph
	if o.phnum != 0 {
		phnum = o.phnum
	}
	if o.class == elfClass64 {
		le.PutUint16(hdr[18:], emX8664)
		le.PutUint64(hdr[32:], uint64(phoff))
		le.PutUint16(hdr[52:], uint16(ehsize))
		le.PutUint16(hdr[54:], uint16(phsize))
		le.PutUint16(hdr[56:], uint16(phnum))
	} else {
		le.PutUint16(hdr[18:], em386)
		le.PutUint32(hdr[28:], uint32(phoff))
		le.PutUint16(hdr[40:], uint16(ehsize))
		le.PutUint16(hdr[42:], uint16(phsize))
		le.PutUint16(hdr[44:], uint16(phnum))
	}
	buf.Write(hdr)
	dataOff := int64(ehsize + nph*phsize)
	noteOff := dataOff
	dataOff += int64(len(notes))
	ph := func(typ uint32, off int64, paddr, filesz, memsz, palign uint64) {
		b := make([]byte, phsize)
		le.PutUint32(b[0:], typ)
		if o.class == elfClass64 {
			le.PutUint64(b[8:], uint64(off))
			le.PutUint64(b[16:], paddr|0xffffffff80000000)
			le.PutUint64(b[24:], paddr)
			le.PutUint64(b[32:], filesz)
			le.PutUint64(b[40:], memsz)
			le.PutUint64(b[48:], palign)
		} else {
			le.PutUint32(b[4:], uint32(off))
			le.PutUint32(b[8:], uint32(paddr))
			le.PutUint32(b[12:], uint32(paddr))
			le.PutUint32(b[16:], uint32(filesz))
			le.PutUint32(b[20:], uint32(memsz))
			le.PutUint32(b[28:], uint32(palign))
		}
		buf.Write(b)
	}
	ph(ptNote, noteOff, 0, uint64(len(notes)), uint64(len(notes)), align)
	offs := make([]int64, len(o.segs))
	for i, s := range o.segs {
		offs[i] = dataOff
		if s.offset != 0 {
			offs[i] = s.offset
		}
		ph(ptLoad, offs[i], s.paddr, uint64(len(s.data)), s.memsz, 0x1000)
		dataOff += int64(len(s.data))
	}
	buf.Write(notes)
	for _, s := range o.segs {
		buf.Write(s.data)
	}
	return buf.Bytes()
}

// pvhDefaults is a small valid PVH kernel: code at 1 MiB with the entry in it, data
// with a bss at 2 MiB.
func pvhDefaults(class byte) elfOpts {
	code := bytes.Repeat([]byte{0x90}, 0x300)
	data := bytes.Repeat([]byte{0x5a}, 0x100)
	descSize := 8
	if class == elfClass32 {
		descSize = 4
	}
	return elfOpts{
		class:    class,
		segs:     []seg{{paddr: 0x100000, data: code, memsz: 0x300}, {paddr: 0x200000, data: data, memsz: 0x2000}},
		entry:    0x100040,
		descSize: descSize,
	}
}

// newMem is size bytes of guest RAM from address 0, filled with junk so that tests see
// what Load fails to clear.
func newMem(t testing.TB, size uint64) *memory.Guest {
	t.Helper()
	b := bytes.Repeat([]byte{0xaa}, int(size))
	g, err := memory.FromRegions(memory.Region{Base: 0, Mem: b})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// read returns n bytes of guest memory at a.
func read(t testing.TB, mem *memory.Guest, a memory.Addr, n uint64) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := mem.ReadAt(b, a); err != nil {
		t.Fatalf("read %d bytes at %#x: %v", n, uint64(a), err)
	}
	return b
}
