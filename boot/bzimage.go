package boot

import (
	"encoding/binary"
	"fmt"

	"github.com/hullvm/hull/memory"
)

// Offsets into struct boot_params and its struct setup_header
// (arch/x86/include/uapi/asm/bootparam.h; Documentation/arch/x86/boot.rst, "The Real-Mode
// Kernel Header"). The image's first sector carries the header at the same offsets.
const (
	bpE820Entries   = 0x1e8
	bpHdr           = 0x1f1 // setup_header starts here
	bpSetupSects    = 0x1f1
	bpSyssize       = 0x1f4
	bpVidMode       = 0x1fa
	bpBootFlag      = 0x1fe
	bpJump          = 0x200 // the byte at 0x201 gives the header's length
	bpHeader        = 0x202
	bpVersion       = 0x206
	bpTypeOfLoader  = 0x210
	bpLoadflags     = 0x211
	bpCode32Start   = 0x214
	bpRamdiskImage  = 0x218
	bpRamdiskSize   = 0x21c
	bpHeapEndPtr    = 0x224
	bpCmdLinePtr    = 0x228
	bpInitrdAddrMax = 0x22c
	bpKernelAlign   = 0x230
	bpRelocatable   = 0x234
	bpXloadflags    = 0x236
	bpCmdlineSize   = 0x238
	bpPrefAddress   = 0x258
	bpInitSize      = 0x260
	bpHdrMax        = 0x290 // setup_header plus padding ends here
	bpE820Table     = 0x2d0
	bpSize          = 0x1000
	entry64         = 0x200 // the 64-bit entry point, from the start of the loaded kernel

	hdrMagic         = "HdrS"
	bootFlag         = 0xaa55
	minVersion       = 0x020c // 2.12: xloadflags, XLF_KERNEL_64
	xlfKernel64      = 1 << 0
	loadedHigh       = 1 << 0
	canUseHeap       = 1 << 7
	loaderUndefined  = 0xff
	vidNormal        = 0xffff
	e820MaxZeroPage  = 128
	defaultInitrdMax = 0x37ffffff
)

// setup is the parts of a bzImage's setup header Load uses.
type setup struct {
	raw         []byte // the first bpHdrMax bytes of the image, header included
	hdrEnd      int    // end of the header in raw
	setupSize   int64  // real-mode part, (setup_sects+1)*512
	sysSize     int64  // protected-mode part to load
	version     uint16
	align       uint64
	relocatable bool
	pref        uint64
	initSize    uint64
	initrdMax   uint64
	cmdlineSize uint64
}

// parseSetup reads and checks the setup header of a bzImage of size n whose first
// bytes are raw (at least bpHdrMax of them).
func parseSetup(raw []byte, n int64) (*setup, error) {
	le := binary.LittleEndian
	if len(raw) < bpHdrMax {
		return nil, fmt.Errorf("%w: %d bytes is too short for a bzImage header", ErrFormat, n)
	}
	if string(raw[bpHeader:bpHeader+4]) != hdrMagic || le.Uint16(raw[bpBootFlag:]) != bootFlag {
		return nil, fmt.Errorf("%w: no HdrS setup header and no ELF magic", ErrFormat)
	}
	s := &setup{raw: raw, version: le.Uint16(raw[bpVersion:])}
	if s.version < minVersion {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d: need 2.12 or later for the 64-bit entry", ErrBadImage, s.version>>8, s.version&0xff)
	}
	if le.Uint16(raw[bpXloadflags:])&xlfKernel64 == 0 {
		return nil, fmt.Errorf("%w: xloadflags lacks XLF_KERNEL_64: not a 64-bit kernel", ErrBadImage)
	}
	if raw[bpLoadflags]&loadedHigh == 0 {
		return nil, fmt.Errorf("%w: loadflags lacks LOADED_HIGH: a zImage, not a bzImage", ErrBadImage)
	}
	s.hdrEnd = 0x202 + int(raw[bpJump+1])
	if s.hdrEnd < bpInitSize+4 {
		return nil, fmt.Errorf("%w: setup header ends at %#x, before init_size", ErrBadImage, s.hdrEnd)
	}
	s.hdrEnd = min(s.hdrEnd, bpHdrMax)
	sects := int64(raw[bpSetupSects])
	if sects == 0 {
		sects = 4
	}
	s.setupSize = (sects + 1) * 512
	if s.setupSize >= n {
		return nil, fmt.Errorf("%w: setup of %d bytes leaves no kernel in a %d-byte file", ErrBadImage, s.setupSize, n)
	}
	sys := int64(le.Uint32(raw[bpSyssize:])) * 16
	rest := n - s.setupSize
	switch {
	case sys == 0:
		return nil, fmt.Errorf("%w: syssize is 0", ErrBadImage)
	case sys > rest+15:
		return nil, fmt.Errorf("%w: syssize says %d bytes of kernel but the file holds %d: truncated", ErrBadImage, sys, rest)
	}
	// Trailing bytes past syssize (a signature, say) are not loaded.
	s.sysSize = min(sys, rest)
	if s.sysSize <= entry64 {
		return nil, fmt.Errorf("%w: kernel of %d bytes has no 64-bit entry point at +%#x", ErrBadImage, s.sysSize, entry64)
	}
	s.align = uint64(le.Uint32(raw[bpKernelAlign:]))
	if s.align == 0 || s.align&(s.align-1) != 0 || s.align > 1<<30 {
		return nil, fmt.Errorf("%w: kernel_alignment %#x is not a power of two up to 1 GiB", ErrBadImage, s.align)
	}
	s.relocatable = raw[bpRelocatable] != 0
	s.pref = le.Uint64(raw[bpPrefAddress:])
	s.initSize = uint64(le.Uint32(raw[bpInitSize:]))
	if s.initSize == 0 {
		return nil, fmt.Errorf("%w: init_size is 0", ErrBadImage)
	}
	s.initrdMax = uint64(le.Uint32(raw[bpInitrdAddrMax:]))
	if s.initrdMax == 0 {
		s.initrdMax = defaultInitrdMax
	}
	s.cmdlineSize = uint64(le.Uint32(raw[bpCmdlineSize:]))
	return s, nil
}

// runtime is where the kernel decompresses itself and how far its early use of memory
// reaches (boot.rst, init_size; arch/x86/boot/compressed/head_64.S startup_64).
func (s *setup) runtime(load uint64) (start, end uint64, err error) {
	start = s.pref
	if s.relocatable {
		start = max((load+s.align-1)&^(s.align-1), s.pref)
	}
	end = start + s.initSize
	if end < start || end > 1<<52 {
		return 0, 0, fmt.Errorf("%w: runtime area at %#x + init_size %#x overflows", ErrBadImage, start, s.initSize)
	}
	if start < uint64(HighMemory) {
		return 0, 0, fmt.Errorf("%w: kernel runs at %#x, below 1 MiB (pref_address %#x)", ErrBadImage, start, s.pref)
	}
	return start, end, nil
}

// loadBzImage loads a bzImage for the 64-bit boot protocol.
func loadBzImage(mem *memory.Guest, p Params) (*Entry, error) {
	raw := make([]byte, min(p.KernelSize, bpHdrMax))
	if err := readFull(p.Kernel, raw, 0); err != nil {
		return nil, fmt.Errorf("load bzImage: read header: %w", err)
	}
	s, err := parseSetup(raw, p.KernelSize)
	if err != nil {
		return nil, fmt.Errorf("load bzImage: %w", err)
	}
	if uint64(len(p.Cmdline)) > s.cmdlineSize {
		return nil, fmt.Errorf("load bzImage: command line of %d bytes: the kernel takes at most %d (cmdline_size)", len(p.Cmdline), s.cmdlineSize)
	}
	load := uint64(KernelAddr)
	dst, err := mem.Slice(KernelAddr, uint64(s.sysSize))
	if err != nil {
		return nil, fmt.Errorf("load bzImage: kernel of %d bytes at %#x: %w: %w", s.sysSize, load, ErrNoFit, err)
	}
	rtStart, rtEnd, err := s.runtime(load)
	if err != nil {
		return nil, fmt.Errorf("load bzImage: %w", err)
	}
	if _, err := mem.Slice(memory.Addr(rtStart), rtEnd-rtStart); err != nil {
		return nil, fmt.Errorf("load bzImage: kernel needs [%#x, %#x) (init_size %d MiB): %w: give the VM more memory", rtStart, rtEnd, s.initSize>>20, ErrNoFit)
	}
	if err := readFull(p.Kernel, dst, s.setupSize); err != nil {
		return nil, fmt.Errorf("load bzImage: read kernel: %w", err)
	}
	kernelEnd := memory.Addr(max(load+uint64(s.sysSize), rtEnd))
	e := &Entry{Mode: Long64, KernelEnd: kernelEnd}
	if err := loadCommon(mem, p, e, s.initrdMax); err != nil {
		return nil, fmt.Errorf("load bzImage: %w", err)
	}

	// The zero page: a clean buffer with the image's setup header copied in.
	zp, err := mem.Slice(ZeroPageAddr, bpSize)
	if err != nil {
		return nil, fmt.Errorf("load bzImage: zero page: %w", err)
	}
	clear(zp)
	copy(zp[bpHdr:s.hdrEnd], raw[bpHdr:s.hdrEnd])
	le := binary.LittleEndian
	le.PutUint16(zp[bpVidMode:], vidNormal)
	zp[bpTypeOfLoader] = loaderUndefined
	zp[bpLoadflags] |= canUseHeap
	le.PutUint16(zp[bpHeapEndPtr:], 0xfe00)
	le.PutUint32(zp[bpCode32Start:], uint32(load))
	le.PutUint32(zp[bpCmdLinePtr:], uint32(CmdlineAddr))
	le.PutUint32(zp[bpRamdiskImage:], uint32(e.InitrdAddr))
	le.PutUint32(zp[bpRamdiskSize:], uint32(e.InitrdSize))
	m := e820(mem)
	if len(m) > e820MaxZeroPage {
		return nil, fmt.Errorf("load bzImage: %d memory ranges: the zero page holds %d", len(m), e820MaxZeroPage)
	}
	zp[bpE820Entries] = byte(len(m))
	for i, r := range m {
		b := zp[bpE820Table+20*i:]
		le.PutUint64(b[0:], r.Addr)
		le.PutUint64(b[8:], r.Size)
		le.PutUint32(b[16:], r.Type)
	}

	if err := writePageTables(mem); err != nil {
		return nil, fmt.Errorf("load bzImage: %w", err)
	}
	gdt := gdtFor(Long64)
	if err := writeGDT(mem, gdt); err != nil {
		return nil, fmt.Errorf("load bzImage: %w", err)
	}
	e.RIP = load + entry64
	e.RSI = uint64(ZeroPageAddr)
	e.CR0 = cr0PE | cr0ET | cr0PG
	e.CR3 = uint64(PML4Addr)
	e.CR4 = cr4PAE
	e.EFER = eferLME | eferLMA
	setSegments(e, gdt)
	return e, nil
}
