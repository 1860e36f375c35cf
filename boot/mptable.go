package boot

import (
	"encoding/binary"
	"fmt"

	"github.com/hullvm/hull/memory"
)

// Intel MultiProcessor Specification 1.4, chapter 4: the floating pointer structure and
// the configuration table. Linux finds it by scanning 0xf0000-0xfffff
// (arch/x86/kernel/mpparse.c) and uses it to bring up the CPUs and route ISA IRQs
// through the IOAPIC when there is no ACPI.
const (
	mpfSize       = 16
	mpcHeaderSize = 44
	mpcCPUSize    = 20
	mpcEntrySize  = 8 // bus, IOAPIC, I/O and local interrupt entries

	mpSpecRev    = 4 // 1.4
	mpCPU        = 0
	mpBus        = 1
	mpIOAPIC     = 2
	mpIntSrc     = 3
	mpLintSrc    = 4
	cpuEnabled   = 1
	cpuBoot      = 2
	lapicVersion = 0x14
	ioapicVer    = 0x11
	irqINT       = 0
	irqNMI       = 1
	irqExtINT    = 3
	apicAll      = 0xff
	busISA       = 0
	cpuSignature = 0x600       // family 6
	cpuFeatures  = 1<<0 | 1<<9 // FPU, APIC
)

// mpTableSize is the size of the configuration table for cpus processors.
func mpTableSize(cpus int) int {
	return mpcHeaderSize + cpus*mpcCPUSize + (1+1+IOAPICPins+2)*mpcEntrySize
}

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// writeMPTable writes the floating pointer at MPTableAddr and the configuration table
// right after it: cpus processors (LAPIC ids 0..cpus-1, the first the BSP), one ISA bus,
// one IOAPIC (id cpus) with ISA IRQ n on pin n for every pin, ExtINT on LINT0 and NMI
// on LINT1 of every LAPIC.
func writeMPTable(mem *memory.Guest, cpus int) error {
	if cpus < 1 || cpus > MaxCPUs {
		return fmt.Errorf("%d CPUs: want 1 to %d", cpus, MaxCPUs)
	}
	size := mpTableSize(cpus)
	all, err := mem.Slice(MPTableAddr, uint64(mpfSize+size))
	if err != nil {
		return err
	}
	clear(all)
	le := binary.LittleEndian
	mpf, mpc := all[:mpfSize], all[mpfSize:]
	tableAddr := uint32(MPTableAddr) + mpfSize

	copy(mpf, "_MP_")
	le.PutUint32(mpf[4:], tableAddr)
	mpf[8] = 1 // length in 16-byte paragraphs
	mpf[9] = mpSpecRev
	// feature1 = 0: a configuration table is present; feature2 bit 7 (IMCR) clear:
	// virtual wire mode.
	mpf[10] = checksum(mpf)

	copy(mpc, "PCMP")
	le.PutUint16(mpc[4:], uint16(size))
	mpc[6] = mpSpecRev
	copy(mpc[8:16], "HULL    ")
	copy(mpc[16:28], "MICROVM     ")
	le.PutUint32(mpc[36:], LAPICAddr)
	ioapicID := byte(cpus)
	off := mpcHeaderSize
	n := 0
	entry := func(size int) []byte {
		b := mpc[off : off+size]
		off += size
		n++
		return b
	}
	for i := range cpus {
		b := entry(mpcCPUSize)
		b[0], b[1], b[2], b[3] = mpCPU, byte(i), lapicVersion, cpuEnabled
		if i == 0 {
			b[3] |= cpuBoot
		}
		le.PutUint32(b[4:], cpuSignature)
		le.PutUint32(b[8:], cpuFeatures)
	}
	b := entry(mpcEntrySize)
	b[0], b[1] = mpBus, busISA
	copy(b[2:8], "ISA   ")
	b = entry(mpcEntrySize)
	b[0], b[1], b[2], b[3] = mpIOAPIC, ioapicID, ioapicVer, 1 // usable
	le.PutUint32(b[4:], IOAPICAddr)
	for pin := range IOAPICPins {
		// Flags 0: polarity and trigger conform to the bus, ISA's edge-triggered
		// active-high, which is what irqfd delivers.
		b = entry(mpcEntrySize)
		b[0], b[1], b[4], b[5], b[6], b[7] = mpIntSrc, irqINT, busISA, byte(pin), ioapicID, byte(pin)
	}
	b = entry(mpcEntrySize)
	b[0], b[1], b[4], b[5], b[6], b[7] = mpLintSrc, irqExtINT, busISA, 0, apicAll, 0
	b = entry(mpcEntrySize)
	b[0], b[1], b[4], b[5], b[6], b[7] = mpLintSrc, irqNMI, busISA, 0, apicAll, 1
	le.PutUint16(mpc[34:], uint16(n))
	mpc[7] = checksum(mpc)
	return nil
}
