package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hullvm/hull/memory"
)

const mib = 1 << 20

func loadBz(t *testing.T, mem *memory.Guest, img []byte, initrd []byte, cmdline string) *Entry {
	t.Helper()
	e, err := Load(mem, Params{
		Kernel: bytes.NewReader(img), KernelSize: int64(len(img)),
		Initrd: bytes.NewReader(initrd), InitrdSize: int64(len(initrd)),
		Cmdline: cmdline, CPUs: 2,
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

func TestBzImageZeroPage(t *testing.T) {
	mem := newMem(t, 64*mib)
	img := makeBzImage(bzDefaults())
	initrd := bytes.Repeat([]byte("initrd"), 1000)
	cmdline := "console=ttyS0 panic=-1"
	e := loadBz(t, mem, img, initrd, cmdline)
	zp := read(t, mem, ZeroPageAddr, bpSize)
	le := binary.LittleEndian
	u8 := func(off int) uint64 { return uint64(zp[off]) }
	u16 := func(off int) uint64 { return uint64(le.Uint16(zp[off:])) }
	u32 := func(off int) uint64 { return uint64(le.Uint32(zp[off:])) }
	u64 := func(off int) uint64 { return le.Uint64(zp[off:]) }
	tests := []struct {
		name      string
		got, want uint64
	}{
		{"setup_sects copied", u8(bpSetupSects), 1},
		{"syssize copied", u32(bpSyssize), 0x300},
		{"boot_flag copied", u16(bpBootFlag), bootFlag},
		{"version copied", u16(bpVersion), 0x020f},
		{"header magic copied", u32(bpHeader), uint64(le.Uint32([]byte(hdrMagic)))},
		{"kernel_alignment copied", u32(bpKernelAlign), 0x200000},
		{"pref_address copied", u64(bpPrefAddress), 0x1000000},
		{"init_size copied", u32(bpInitSize), 0x400000},
		{"xloadflags copied", u16(bpXloadflags), 3},
		{"type_of_loader", u8(bpTypeOfLoader), 0xff},
		{"loadflags", u8(bpLoadflags), loadedHigh | canUseHeap},
		{"heap_end_ptr", u16(bpHeapEndPtr), 0xfe00},
		{"vid_mode", u16(bpVidMode), 0xffff},
		{"code32_start", u32(bpCode32Start), 0x100000},
		{"cmd_line_ptr", u32(bpCmdLinePtr), uint64(CmdlineAddr)},
		{"ramdisk_image", u32(bpRamdiskImage), uint64(e.InitrdAddr)},
		{"ramdisk_size", u32(bpRamdiskSize), uint64(len(initrd))},
		{"byte past the header not copied", u8(0x26c), 0},
		{"sentinel clear", u8(0x1ef), 0},
		{"hardware_subarch", u32(0x23c), 0},
		{"e820_entries", u8(bpE820Entries), 4},
		{"entry RIP", e.RIP, 0x100200},
		{"entry RSI", e.RSI, uint64(ZeroPageAddr)},
		{"entry RSP", e.RSP, uint64(StackTop)},
		{"entry RFLAGS", e.RFLAGS, 2},
		{"CR0", e.CR0, 0x80000011},
		{"CR3", e.CR3, uint64(PML4Addr)},
		{"CR4", e.CR4, 0x20},
		{"EFER", e.EFER, 0x500},
		{"mode", uint64(e.Mode), uint64(Long64)},
		{"kernel end is runtime start + init_size", uint64(e.KernelEnd), 0x1000000 + 0x400000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %#x, want %#x", tc.got, tc.want)
			}
		})
	}
	if got := read(t, mem, CmdlineAddr, uint64(len(cmdline)+1)); string(got) != cmdline+"\x00" {
		t.Errorf("command line = %q", got)
	}
	if got := read(t, mem, KernelAddr, 0x3000); !bytes.Equal(got, img[1024:]) {
		t.Error("protected-mode kernel not at 1 MiB")
	}
	if got := read(t, mem, e.InitrdAddr, uint64(len(initrd))); !bytes.Equal(got, initrd) {
		t.Error("initrd contents differ")
	}
	for i, want := range E820(mem) {
		b := zp[bpE820Table+20*i:]
		got := E820Entry{Addr: le.Uint64(b), Size: le.Uint64(b[8:]), Type: le.Uint32(b[16:])}
		if got != want {
			t.Errorf("e820[%d] = %+v, want %+v", i, got, want)
		}
	}
}

func TestE820(t *testing.T) {
	const gib = 1 << 30
	low := func(top uint64) []E820Entry {
		return []E820Entry{
			{0, 0x9fc00, E820RAM},
			{0x9fc00, 0x400, E820Reserved},
			{0xf0000, 0x10000, E820Reserved},
			{0x100000, top - 0x100000, E820RAM},
		}
	}
	tests := []struct {
		name string
		size uint64
		want []E820Entry
	}{
		{"16 MiB", 16 * mib, low(16 * mib)},
		{"256 MiB", 256 * mib, low(256 * mib)},
		{"3 GiB, up to the gap", 3 * gib, low(3 * gib)},
		{"3 GiB + 2 MiB, split by the gap", 3*gib + 2*mib, append(low(3*gib), E820Entry{4 * gib, 2 * mib, E820RAM})},
		{"6 GiB", 6 * gib, append(low(3*gib), E820Entry{4 * gib, 3 * gib, E820RAM})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem, err := memory.New(tc.size)
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Close()
			got := E820(mem)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("e820 = %x\nwant  %x", got, tc.want)
			}
		})
	}
}

func TestE820InZeroPageAboveGap(t *testing.T) {
	mem, err := memory.New(4<<30 + 64*mib)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	img := makeBzImage(bzDefaults())
	e := loadBz(t, mem, img, []byte("x"), "")
	zp := read(t, mem, ZeroPageAddr, bpSize)
	if n := zp[bpE820Entries]; n != 5 {
		t.Fatalf("e820_entries = %d, want 5", n)
	}
	last := zp[bpE820Table+20*4:]
	if a, s := binary.LittleEndian.Uint64(last), binary.LittleEndian.Uint64(last[8:]); a != 4<<30 || s != 1<<30+64*mib {
		t.Errorf("last e820 entry [%#x, +%#x), want RAM above 4 GiB", a, s)
	}
	// initrd_addr_max is 2 GiB - 1: the initrd ends at or below 2 GiB, not in high RAM.
	if end := uint64(e.InitrdAddr) + e.InitrdSize; end > 2<<30 || e.InitrdAddr < 1<<30 {
		t.Errorf("initrd at %#x..%#x, want just below 2 GiB", uint64(e.InitrdAddr), end)
	}
}

func TestInitrdPlacement(t *testing.T) {
	tests := []struct {
		name      string
		mem       uint64
		size      int
		initrdMax uint32
		wantEnd   uint64 // highest page boundary the initrd may end at
	}{
		{"top of small memory", 64 * mib, 5000, 0x7fffffff, 64 * mib},
		{"page-aligned start", 64 * mib, 4096*3 + 1, 0x7fffffff, 64 * mib},
		{"below initrd_addr_max", 128 * mib, 1 * mib, 64*mib - 1, 64 * mib},
		{"unaligned initrd_addr_max", 128 * mib, 100, 64*mib + 0x123, 64*mib + 0x124},
		{"fills the space above the kernel", 64 * mib, 64*mib - 0x1400000, 0x7fffffff, 64 * mib},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newMem(t, tc.mem)
			o := bzDefaults()
			o.initrdMax = tc.initrdMax
			initrd := bytes.Repeat([]byte{0x42}, tc.size)
			e := loadBz(t, mem, makeBzImage(o), initrd, "")
			start, end := uint64(e.InitrdAddr), uint64(e.InitrdAddr)+e.InitrdSize
			if start%pageSize != 0 {
				t.Errorf("initrd at %#x: not page-aligned", start)
			}
			if end > tc.wantEnd {
				t.Errorf("initrd ends at %#x, past %#x", end, tc.wantEnd)
			}
			if tc.wantEnd-end >= 2*pageSize {
				t.Errorf("initrd ends at %#x, not placed high (limit %#x)", end, tc.wantEnd)
			}
			if start < uint64(e.KernelEnd) {
				t.Errorf("initrd at %#x overlaps the kernel, which ends at %#x", start, uint64(e.KernelEnd))
			}
			if !bytes.Equal(read(t, mem, e.InitrdAddr, e.InitrdSize), initrd) {
				t.Error("initrd contents differ")
			}
		})
	}
}

// walk translates a virtual address through the page tables at cr3 the way the MMU
// does with 4-level paging, and reports whether it is mapped.
func walk(t *testing.T, mem *memory.Guest, cr3, va uint64) (uint64, bool) {
	t.Helper()
	entry := func(table uint64, idx uint64) uint64 {
		return binary.LittleEndian.Uint64(read(t, mem, memory.Addr(table&^0xfff+8*idx), 8))
	}
	const addrMask = 0x000ffffffffff000
	pml4e := entry(cr3, va>>39&511)
	if pml4e&1 == 0 {
		return 0, false
	}
	pdpte := entry(pml4e&addrMask, va>>30&511)
	if pdpte&1 == 0 {
		return 0, false
	}
	if pdpte&0x80 != 0 {
		return pdpte&addrMask&^(1<<30-1) | va&(1<<30-1), true
	}
	pde := entry(pdpte&addrMask, va>>21&511)
	if pde&1 == 0 {
		return 0, false
	}
	if pde&0x80 != 0 {
		return pde&addrMask&^(1<<21-1) | va&(1<<21-1), true
	}
	pte := entry(pde&addrMask, va>>12&511)
	if pte&1 == 0 {
		return 0, false
	}
	return pte&addrMask | va&0xfff, true
}

func TestPageTablesIdentityMap(t *testing.T) {
	mem := newMem(t, 32*mib)
	e := loadBz(t, mem, makeBzImage(bzDefaults()), nil, "")
	tests := []struct {
		va     uint64
		mapped bool
	}{
		{0, true},
		{uint64(ZeroPageAddr), true},
		{uint64(CmdlineAddr) + 17, true},
		{0x100200, true},
		{0x1234567, true},
		{1<<30 + 5, true},
		{3<<30 + 0x1fffff, true},
		{IOAPICAddr, true},
		{4<<30 - 1, true},
		{4 << 30, false},
		{1 << 39, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%#x", tc.va), func(t *testing.T) {
			pa, ok := walk(t, mem, e.CR3, tc.va)
			if ok != tc.mapped {
				t.Fatalf("mapped = %v, want %v", ok, tc.mapped)
			}
			if ok && pa != tc.va {
				t.Fatalf("maps to %#x, want identity", pa)
			}
		})
	}
}

func TestGDT(t *testing.T) {
	tests := []struct {
		name     string
		img      []byte
		codeL    uint8
		codeDB   uint8
		wantMode Mode
	}{
		{"bzImage: 64-bit code", makeBzImage(bzDefaults()), 1, 0, Long64},
		{"PVH: 32-bit code", makeELF(pvhDefaults(elfClass64)), 0, 1, PVH32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newMem(t, 32*mib)
			e := loadBz(t, mem, tc.img, nil, "")
			if e.Mode != tc.wantMode {
				t.Fatalf("mode %v, want %v", e.Mode, tc.wantMode)
			}
			if e.GDT.Base != uint64(GDTAddr) || e.GDT.Limit != 47 {
				t.Fatalf("GDTR = %+v", e.GDT)
			}
			raw := read(t, mem, GDTAddr, uint64(e.GDT.Limit)+1)
			desc := func(sel uint16) uint64 { return binary.LittleEndian.Uint64(raw[sel:]) }
			for _, s := range []Segment{e.CS, e.DS, e.TR} {
				if got := segment(desc(s.Selector), s.Selector); got != s {
					t.Errorf("selector %#x: register %+v, GDT says %+v", s.Selector, s, got)
				}
			}
			if desc(0) != 0 {
				t.Error("null descriptor not null")
			}
			want := []struct {
				name      string
				got, want uint64
			}{
				{"CS selector", uint64(e.CS.Selector), 0x10},
				{"CS base", e.CS.Base, 0},
				{"CS limit", uint64(e.CS.Limit), 0xffffffff},
				{"CS type execute/read", uint64(e.CS.Type & 0xa), 0xa},
				{"CS present", uint64(e.CS.Present), 1},
				{"CS code/data", uint64(e.CS.S), 1},
				{"CS L", uint64(e.CS.L), uint64(tc.codeL)},
				{"CS DB", uint64(e.CS.DB), uint64(tc.codeDB)},
				{"DS selector", uint64(e.DS.Selector), 0x18},
				{"DS limit", uint64(e.DS.Limit), 0xffffffff},
				{"DS type read/write data", uint64(e.DS.Type & 0xa), 0x2},
				{"DS DB", uint64(e.DS.DB), 1},
				{"TR busy TSS", uint64(e.TR.Type), 0xb},
				{"TR limit", uint64(e.TR.Limit), 0x67},
				{"TR system segment", uint64(e.TR.S), 0},
				{"TR present", uint64(e.TR.Present), 1},
				{"TSS high half", desc(0x28), 0},
				{"IDT limit", uint64(e.IDT.Limit), 0},
			}
			for _, w := range want {
				if w.got != w.want {
					t.Errorf("%s = %#x, want %#x", w.name, w.got, w.want)
				}
			}
		})
	}
}

// mpEntries is a parsed MP configuration table.
type mpEntries struct {
	cpus, bsps, buses, ioapics, ints, lints int
	lapicIDs                                map[byte]bool
	pins                                    map[byte]byte // pin -> ISA IRQ
	ioapicID                                byte
	ioapicAddr                              uint32
	busName                                 string
	count                                   int
}

// findMP scans [0xf0000, 1 MiB) on 16-byte boundaries for the floating pointer, as
// Linux does, checks both checksums and parses the configuration table.
func findMP(t *testing.T, mem *memory.Guest) mpEntries {
	t.Helper()
	sum := func(b []byte) (s byte) {
		for _, c := range b {
			s += c
		}
		return s
	}
	area := read(t, mem, 0xf0000, 0x10000)
	le := binary.LittleEndian
	for off := 0; off < len(area); off += 16 {
		mpf := area[off : off+16]
		if string(mpf[:4]) != "_MP_" {
			continue
		}
		if sum(mpf) != 0 || mpf[8] != 1 || mpf[9] != 4 || mpf[11] != 0 {
			t.Fatalf("floating pointer %x: bad checksum, length, revision or default config", mpf)
		}
		ptr := le.Uint32(mpf[4:])
		hdr := read(t, mem, memory.Addr(ptr), 44)
		if string(hdr[:4]) != "PCMP" || hdr[6] != 4 || le.Uint32(hdr[36:]) != LAPICAddr {
			t.Fatalf("config table header %x", hdr)
		}
		tab := read(t, mem, memory.Addr(ptr), uint64(le.Uint16(hdr[4:])))
		if sum(tab) != 0 {
			t.Fatal("config table checksum")
		}
		m := mpEntries{lapicIDs: map[byte]bool{}, pins: map[byte]byte{}, count: int(le.Uint16(hdr[34:]))}
		for p := 44; p < len(tab); {
			switch tab[p] {
			case mpCPU:
				m.cpus++
				m.lapicIDs[tab[p+1]] = true
				if tab[p+3]&cpuBoot != 0 {
					m.bsps++
					if tab[p+1] != 0 {
						t.Errorf("BSP has LAPIC id %d", tab[p+1])
					}
				}
				if tab[p+2] != 0x14 || tab[p+3]&cpuEnabled == 0 {
					t.Errorf("processor entry %x", tab[p:p+20])
				}
				p += 20
				continue
			case mpBus:
				m.buses++
				m.busName = string(tab[p+2 : p+8])
			case mpIOAPIC:
				m.ioapics++
				m.ioapicID, m.ioapicAddr = tab[p+1], le.Uint32(tab[p+4:])
			case mpIntSrc:
				m.ints++
				if tab[p+6] != m.ioapicID {
					t.Errorf("interrupt entry %x targets IOAPIC %d", tab[p:p+8], tab[p+6])
				}
				m.pins[tab[p+7]] = tab[p+5]
			case mpLintSrc:
				m.lints++
			default:
				t.Fatalf("unknown entry type %d at %d", tab[p], p)
			}
			p += 8
		}
		return m
	}
	t.Fatal("no MP floating pointer in 0xf0000-0xfffff")
	return mpEntries{}
}

func TestMPTable(t *testing.T) {
	for _, cpus := range []int{0, 1, 2, 8, 64, MaxCPUs} {
		t.Run(fmt.Sprint(cpus), func(t *testing.T) {
			mem := newMem(t, 32*mib)
			img := makeBzImage(bzDefaults())
			_, err := Load(mem, Params{Kernel: bytes.NewReader(img), KernelSize: int64(len(img)), CPUs: cpus})
			if err != nil {
				t.Fatal(err)
			}
			n := max(cpus, 1)
			m := findMP(t, mem)
			got := []struct {
				name      string
				got, want int
			}{
				{"processors", m.cpus, n},
				{"distinct LAPIC ids", len(m.lapicIDs), n},
				{"boot processors", m.bsps, 1},
				{"buses", m.buses, 1},
				{"IOAPICs", m.ioapics, 1},
				{"IOAPIC id", int(m.ioapicID), n},
				{"I/O interrupts", m.ints, IOAPICPins},
				{"pins routed", len(m.pins), IOAPICPins},
				{"local interrupts", m.lints, 2},
				{"entry count", m.count, n + 1 + 1 + IOAPICPins + 2},
			}
			for _, g := range got {
				if g.got != g.want {
					t.Errorf("%s = %d, want %d", g.name, g.got, g.want)
				}
			}
			if m.ioapicAddr != IOAPICAddr || m.busName != "ISA   " {
				t.Errorf("IOAPIC at %#x, bus %q", m.ioapicAddr, m.busName)
			}
			for pin, irq := range m.pins {
				if pin != irq {
					t.Errorf("IOAPIC pin %d gets ISA IRQ %d", pin, irq)
				}
			}
		})
	}
}

func TestPVH(t *testing.T) {
	tests := []struct {
		name  string
		class byte
		align uint64
	}{
		{"ELF64, 8-byte entry note", elfClass64, 4},
		{"ELF64, 8-aligned notes", elfClass64, 8},
		{"ELF32, 4-byte entry note", elfClass32, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newMem(t, 64*mib)
			o := pvhDefaults(tc.class)
			o.noteAlgn = tc.align
			img := makeELF(o)
			initrd := []byte("the initrd")
			cmdline := "console=ttyS0"
			e := loadBz(t, mem, img, initrd, cmdline)
			si := read(t, mem, ZeroPageAddr, 56)
			le := binary.LittleEndian
			mod := read(t, mem, memory.Addr(le.Uint64(si[16:])), 32)
			want := []struct {
				name      string
				got, want uint64
			}{
				{"mode", uint64(e.Mode), uint64(PVH32)},
				{"RIP", e.RIP, 0x100040},
				{"RBX", e.RBX, uint64(ZeroPageAddr)},
				{"RSI", e.RSI, 0},
				{"CR0", e.CR0, 0x11},
				{"CR3", e.CR3, 0},
				{"CR4", e.CR4, 0},
				{"EFER", e.EFER, 0},
				{"RFLAGS", e.RFLAGS, 2},
				{"kernel end", uint64(e.KernelEnd), 0x202000},
				{"magic", uint64(le.Uint32(si[0:])), 0x336ec578},
				{"version", uint64(le.Uint32(si[4:])), 1},
				{"flags", uint64(le.Uint32(si[8:])), 0},
				{"nr_modules", uint64(le.Uint32(si[12:])), 1},
				{"cmdline_paddr", le.Uint64(si[24:]), uint64(CmdlineAddr)},
				{"rsdp_paddr", le.Uint64(si[32:]), 0},
				{"memmap_entries", uint64(le.Uint32(si[48:])), uint64(len(E820(mem)))},
				{"reserved", uint64(le.Uint32(si[52:])), 0},
				{"module paddr", le.Uint64(mod[0:]), uint64(e.InitrdAddr)},
				{"module size", le.Uint64(mod[8:]), uint64(len(initrd))},
				{"module cmdline", le.Uint64(mod[16:]), 0},
				{"initrd high", uint64(e.InitrdAddr), 64*mib - pageSize},
			}
			for _, w := range want {
				if w.got != w.want {
					t.Errorf("%s = %#x, want %#x", w.name, w.got, w.want)
				}
			}
			for i, r := range E820(mem) {
				b := read(t, mem, memory.Addr(le.Uint64(si[40:])+uint64(24*i)), 24)
				got := E820Entry{Addr: le.Uint64(b), Size: le.Uint64(b[8:]), Type: le.Uint32(b[16:])}
				if got != r || le.Uint32(b[20:]) != 0 {
					t.Errorf("memmap[%d] = %+v, want %+v", i, got, r)
				}
			}
			if got := read(t, mem, CmdlineAddr, uint64(len(cmdline)+1)); string(got) != cmdline+"\x00" {
				t.Errorf("command line %q", got)
			}
			if got := read(t, mem, memory.Addr(le.Uint64(mod[0:])), uint64(len(initrd))); !bytes.Equal(got, initrd) {
				t.Errorf("initrd %q", got)
			}
			for _, s := range o.segs {
				got := read(t, mem, memory.Addr(s.paddr), s.memsz)
				if !bytes.Equal(got[:len(s.data)], s.data) {
					t.Errorf("segment at %#x not loaded", s.paddr)
				}
				if bytes.ContainsFunc(got[len(s.data):], func(r rune) bool { return r != 0 }) {
					t.Errorf("bss of segment at %#x not zeroed", s.paddr)
				}
			}
			// The MP table is written for PVH guests too.
			if m := findMP(t, mem); m.cpus != 2 {
				t.Errorf("MP table lists %d CPUs, want 2", m.cpus)
			}
		})
	}
}

func TestPVHNoInitrd(t *testing.T) {
	mem := newMem(t, 16*mib)
	e := loadBz(t, mem, makeELF(pvhDefaults(elfClass32)), nil, "")
	si := read(t, mem, ZeroPageAddr, 56)
	if n, ml := binary.LittleEndian.Uint32(si[12:]), binary.LittleEndian.Uint64(si[16:]); n != 0 || ml != 0 || e.InitrdSize != 0 {
		t.Fatalf("nr_modules %d, modlist %#x, initrd size %d without an initrd", n, ml, e.InitrdSize)
	}
}

func TestPVHEntryNote(t *testing.T) {
	le := binary.LittleEndian
	note := func(name string, typ uint32, desc []byte, pad int) []byte {
		var b []byte
		b = le.AppendUint32(b, uint32(len(name)))
		b = le.AppendUint32(b, uint32(len(desc)))
		b = le.AppendUint32(b, typ)
		b = append(b, name...)
		for len(b)%pad != 0 {
			b = append(b, 0)
		}
		b = append(b, desc...)
		for len(b)%pad != 0 {
			b = append(b, 0)
		}
		return b
	}
	entry8 := le.AppendUint64(nil, 0x1000600)
	tests := []struct {
		name    string
		notes   []byte
		palign  uint64
		want    uint64
		wantErr bool
	}{
		{"Xen 8-byte", note("Xen\x00", 18, entry8, 4), 4, 0x1000600, false},
		{"Xen 4-byte", note("Xen\x00", 18, []byte{0, 0, 0x10, 0}, 4), 4, 0x100000, false},
		{"after other notes", append(note("GNU\x00", 3, make([]byte, 20), 4), note("Xen\x00", 18, entry8, 4)...), 4, 0x1000600, false},
		{"8-byte padding", append(note("GNU\x00\x00", 5, make([]byte, 12), 8), note("Xen\x00", 18, entry8, 8)...), 8, 0x1000600, false},
		{"other Xen note", note("Xen\x00", 17, entry8, 4), 4, 0, false},
		{"other owner", note("Linux\x00", 18, entry8, 4), 4, 0, false},
		{"no notes", nil, 4, 0, false},
		{"trailing bytes shorter than a header", append(note("Xen\x00", 18, entry8, 4)[:24], 1, 2), 4, 0x1000600, false},
		{"entry above 4 GiB", note("Xen\x00", 18, le.AppendUint64(nil, 1<<32), 4), 4, 0, true},
		{"odd descriptor size", note("Xen\x00", 18, []byte{1, 2}, 4), 4, 0, true},
		{"name past end", le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 100), 0), 18), 4, 0, true},
		{"descriptor past end", append(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 4), 100), 18), "Xen\x00"...), 4, 0, true},
		{"huge name size", le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0xffffffff), 0), 18), 4, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pvhEntry(tc.notes, tc.palign)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("entry %#x, want %#x", got, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	bz := func(f func(*bzOpts)) []byte {
		o := bzDefaults()
		f(&o)
		return makeBzImage(o)
	}
	pvh := func(f func(*elfOpts)) []byte {
		o := pvhDefaults(elfClass64)
		f(&o)
		return makeELF(o)
	}
	valid := makeBzImage(bzDefaults())
	poke := func(img []byte, off int, v byte) []byte {
		b := bytes.Clone(img)
		b[off] = v
		return b
	}
	tests := []struct {
		name    string
		img     []byte
		mem     uint64
		initrd  int
		cmdline string
		cpus    int
		want    error // nil: any error
		msg     string
	}{
		{"empty", nil, 32 * mib, 0, "", 1, ErrFormat, "empty"},
		{"tiny", []byte{1, 2}, 32 * mib, 0, "", 1, ErrBadImage, "truncated"},
		{"no magic", bytes.Repeat([]byte{0x90}, 4096), 32 * mib, 0, "", 1, ErrFormat, "HdrS"},
		{"header cut short", valid[:0x250], 32 * mib, 0, "", 1, ErrFormat, "too short"},
		{"bad boot flag", poke(valid, bpBootFlag, 0), 32 * mib, 0, "", 1, ErrFormat, "HdrS"},
		{"protocol 2.11", bz(func(o *bzOpts) { o.version = 0x020b }), 32 * mib, 0, "", 1, ErrBadImage, "2.11"},
		{"32-bit kernel", bz(func(o *bzOpts) { o.xloadflags = 0 }), 32 * mib, 0, "", 1, ErrBadImage, "XLF_KERNEL_64"},
		{"zImage", bz(func(o *bzOpts) { o.loadflags = 0 }), 32 * mib, 0, "", 1, ErrBadImage, "LOADED_HIGH"},
		{"short header", bz(func(o *bzOpts) { o.hdrLen = 0x20 }), 32 * mib, 0, "", 1, ErrBadImage, "init_size"},
		{"setup past EOF", poke(valid, bpSetupSects, 200), 32 * mib, 0, "", 1, ErrBadImage, "no kernel"},
		{"syssize past EOF", bz(func(o *bzOpts) { o.syssize = 0x400 }), 32 * mib, 0, "", 1, ErrBadImage, "truncated"},
		{"syssize zero", poke(poke(valid, bpSyssize, 0), bpSyssize+1, 0), 32 * mib, 0, "", 1, ErrBadImage, "syssize"},
		{"alignment not a power of two", bz(func(o *bzOpts) { o.align = 0x300000 }), 32 * mib, 0, "", 1, ErrBadImage, "kernel_alignment"},
		{"alignment zero", bz(func(o *bzOpts) { o.align = 0 }), 32 * mib, 0, "", 1, ErrBadImage, "kernel_alignment"},
		{"no room for the 64-bit entry", bz(func(o *bzOpts) { o.payload = 0x200 }), 32 * mib, 0, "", 1, ErrBadImage, "64-bit entry"},
		{"non-relocatable below 1 MiB", bz(func(o *bzOpts) { o.relocatable, o.pref = 0, 0x10000 }), 32 * mib, 0, "", 1, ErrBadImage, "below 1 MiB"},
		{"init_size zero", bz(func(o *bzOpts) { o.initSize = 0 }), 32 * mib, 0, "", 1, ErrBadImage, "init_size"},
		{"init_size past memory", bz(func(o *bzOpts) { o.initSize = 0x1000000 }), 24 * mib, 0, "", 1, ErrNoFit, "more memory"},
		{"pref_address wraps", bz(func(o *bzOpts) { o.pref = ^uint64(0) - 0x1000 }), 32 * mib, 0, "", 1, ErrBadImage, "overflows"},
		{"kernel bigger than memory", bz(func(o *bzOpts) { o.payload = 2 * mib }), 2 * mib, 0, "", 1, ErrNoFit, ""},
		{"cmdline past cmdline_size", bz(func(o *bzOpts) { o.cmdlineSize = 10 }), 32 * mib, 0, "console=ttyS0", 1, nil, "cmdline_size"},
		{"cmdline too long for its area", bz(func(o *bzOpts) { o.cmdlineSize = 1 << 20 }), 32 * mib, 0, strings.Repeat("a", CmdlineMax), 1, nil, "at most"},
		{"cmdline with NUL", valid, 32 * mib, 0, "a\x00b", 1, nil, "NUL"},
		{"initrd does not fit", valid, 32 * mib, 16 * mib, "", 1, ErrNoFit, "initrd"},
		{"initrd above initrd_addr_max", bz(func(o *bzOpts) { o.initrdMax = 0x1000000 }), 64 * mib, 4096, "", 1, ErrNoFit, "initrd"},
		{"too many CPUs", valid, 32 * mib, 0, "", MaxCPUs + 1, nil, "CPUs"},
		{"negative CPUs", valid, 32 * mib, 0, "", -1, nil, "CPUs"},
		{"memory below 1 MiB", valid, 512 << 10, 0, "", 1, ErrNoFit, "1 MiB"},

		{"ELF header truncated", makeELF(pvhDefaults(elfClass64))[:40], 32 * mib, 0, "", 1, ErrBadImage, "too short"},
		{"ELF big-endian", poke(makeELF(pvhDefaults(elfClass64)), 5, 2), 32 * mib, 0, "", 1, ErrBadImage, "little-endian"},
		{"ELF bad class", poke(makeELF(pvhDefaults(elfClass64)), 4, 9), 32 * mib, 0, "", 1, ErrBadImage, "class"},
		{"ELF not executable", poke(makeELF(pvhDefaults(elfClass64)), 16, 3), 32 * mib, 0, "", 1, ErrBadImage, "ET_EXEC"},
		{"ELF wrong machine", poke(makeELF(pvhDefaults(elfClass64)), 18, 40), 32 * mib, 0, "", 1, ErrBadImage, "machine"},
		{"ELF program headers past EOF", pvh(func(o *elfOpts) { o.phoff = 1 << 20 }), 32 * mib, 0, "", 1, ErrBadImage, "past the end"},
		{"ELF too many program headers", pvh(func(o *elfOpts) { o.phnum = 1000 }), 32 * mib, 0, "", 1, ErrBadImage, "program headers"},
		{"ELF no program headers", pvh(func(o *elfOpts) { o.phnum = 0xffff }), 32 * mib, 0, "", 1, ErrBadImage, "program headers"},
		{"ELF segment past EOF", pvh(func(o *elfOpts) { o.segs[1].offset = 1 << 30 }), 32 * mib, 0, "", 1, ErrBadImage, "past the end"},
		{"ELF file size > memory size", pvh(func(o *elfOpts) { o.segs[1].memsz = 1 }), 32 * mib, 0, "", 1, ErrBadImage, "file size"},
		{"ELF overlapping segments", pvh(func(o *elfOpts) { o.segs[1].paddr = 0x100100 }), 32 * mib, 0, "", 1, ErrBadImage, "overlap"},
		{"ELF segment over the zero page", pvh(func(o *elfOpts) { o.segs[1].paddr = 0x7800 }), 32 * mib, 0, "", 1, ErrBadImage, "boot structures"},
		{"ELF segment over the MP table", pvh(func(o *elfOpts) { o.segs[1].paddr = 0xfff00 }), 32 * mib, 0, "", 1, ErrBadImage, "boot structures"},
		{"ELF segment outside memory", pvh(func(o *elfOpts) { o.segs[1].paddr = 64 * mib }), 32 * mib, 0, "", 1, ErrNoFit, "segment"},
		{"ELF segment wraps", pvh(func(o *elfOpts) { o.segs[1].paddr, o.segs[1].memsz = ^uint64(0)-0x10, 0x1000 }), 32 * mib, 0, "", 1, ErrBadImage, "wraps"},
		{"ELF no PVH note", pvh(func(o *elfOpts) { o.descSize = 0 }), 32 * mib, 0, "", 1, ErrBadImage, "CONFIG_PVH"},
		{"ELF entry outside segments", pvh(func(o *elfOpts) { o.entry = 0x180000 }), 32 * mib, 0, "", 1, ErrBadImage, "outside"},
		{"ELF entry above 4 GiB", pvh(func(o *elfOpts) { o.entry = 1 << 33 }), 32 * mib, 0, "", 1, ErrBadImage, "4 GiB"},
		{"ELF no loadable segment", pvh(func(o *elfOpts) { o.segs = nil }), 32 * mib, 0, "", 1, ErrBadImage, "loadable"},
		{"ELF initrd does not fit", makeELF(pvhDefaults(elfClass32)), 4 * mib, 3 * mib, "", 1, ErrNoFit, "initrd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newMem(t, tc.mem)
			p := Params{Kernel: bytes.NewReader(tc.img), KernelSize: int64(len(tc.img)), Cmdline: tc.cmdline, CPUs: tc.cpus}
			if tc.initrd > 0 {
				p.Initrd, p.InitrdSize = bytes.NewReader(make([]byte, tc.initrd)), int64(tc.initrd)
			}
			e, err := Load(mem, p)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", e)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

// A kernel or initrd that turns out shorter than its stated size is a truncated image.
func TestShortReader(t *testing.T) {
	img := makeBzImage(bzDefaults())
	long := bzDefaults()
	long.syssize = (uint32(long.payload) + 4096) / 16
	claims := makeBzImage(long)
	tests := []struct {
		name string
		p    Params
	}{
		{"kernel", Params{Kernel: bytes.NewReader(claims), KernelSize: int64(len(claims)) + 4096}},
		{"initrd", Params{Kernel: bytes.NewReader(img), KernelSize: int64(len(img)), Initrd: bytes.NewReader([]byte("abc")), InitrdSize: 4096}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(newMem(t, 32*mib), tc.p)
			if !errors.Is(err, ErrBadImage) {
				t.Fatalf("err = %v, want ErrBadImage", err)
			}
		})
	}
}

func TestBzImageRuntimeArea(t *testing.T) {
	tests := []struct {
		name        string
		relocatable byte
		pref        uint64
		align       uint32
		wantEnd     uint64
	}{
		{"relocatable, runs at pref_address", 1, 0x1000000, 0x200000, 0x1000000 + 0x400000},
		{"relocatable, pref below the load address: aligned load address", 1, 0x100000, 0x200000, 0x200000 + 0x400000},
		{"relocatable, 4 KiB alignment: the load address", 1, 0x100000, 0x1000, 0x100000 + 0x400000},
		{"not relocatable: pref_address", 0, 0x1400000, 0x200000, 0x1400000 + 0x400000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := bzDefaults()
			o.relocatable, o.pref, o.align = tc.relocatable, tc.pref, tc.align
			e := loadBz(t, newMem(t, 64*mib), makeBzImage(o), []byte("rd"), "")
			if uint64(e.KernelEnd) != tc.wantEnd {
				t.Fatalf("kernel end %#x, want %#x", uint64(e.KernelEnd), tc.wantEnd)
			}
			if e.InitrdAddr < e.KernelEnd {
				t.Fatalf("initrd at %#x below the kernel end", uint64(e.InitrdAddr))
			}
		})
	}
}

func TestInitrdSizeWithoutReader(t *testing.T) {
	img := makeBzImage(bzDefaults())
	_, err := Load(newMem(t, 32*mib), Params{Kernel: bytes.NewReader(img), KernelSize: int64(len(img)), InitrdSize: 10})
	if err == nil || !strings.Contains(err.Error(), "initrd") {
		t.Fatalf("err = %v, want an initrd error", err)
	}
}
