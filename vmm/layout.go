package vmm

import "github.com/hullvm/hull/memory"

// Guest physical layout of what the VMM places in the MMIO gap [3 GiB, 4 GiB) that
// memory.New leaves free. boot owns everything below 1 MiB (and the IOAPIC and LAPIC
// addresses, which are KVM's defaults).
const (
	// VirtioBase is the first virtio-mmio window; device i sits at VirtioBase+i*VirtioSize.
	VirtioBase memory.Addr = 0xd000_0000
	VirtioSize             = 0x1000
	// VirtioIRQ is the first virtio device's interrupt (GSI); device i uses VirtioIRQ+i.
	// ISA IRQ n is IOAPIC pin n (boot's MP table), so they reach both PIC and IOAPIC.
	VirtioIRQ = 5
	// MaxVirtio is how many virtio-mmio devices fit below the IOAPIC's 24 pins.
	MaxVirtio = 24 - VirtioIRQ

	// The three pages VT-x needs for its real-mode TSS, and its identity-map page, just
	// below the BIOS area at the top of 4 GiB (as QEMU and Firecracker place them).
	tssAddr         = 0xfffb_d000
	identityMapAddr = 0xfffb_c000

	// virtioNotify is the QueueNotify register's offset in a window (virtio 1.2 §4.2.2).
	virtioNotify = 0x50
)
