package vmm

import "sync/atomic"

// Stats counts vCPU exits by where they went: the cost of a boot under KVM is mostly
// its exits, so these say where it goes (console output, probing of absent hardware,
// virtio register traffic). Counters only; nothing is logged per exit.
type Stats struct {
	Exits       uint64 // every return from KVM_RUN
	Serial      uint64 // port I/O to the UART
	I8042       uint64 // port I/O to the i8042
	OtherPorts  uint64 // port I/O to absent hardware (POST, CMOS, PCI config, other COMs...)
	Virtio      uint64 // MMIO to virtio windows
	OtherMMIO   uint64 // MMIO nobody claims
	Interrupted uint64 // KVM_RUN interrupted by a signal or a kick
	Batched     uint64 // console bytes KVM batched without an exit (not in Exits)
}

// counters is Stats, updated from every vCPU thread.
type counters struct {
	exits, serial, i8042, otherPorts, virtio, otherMMIO, interrupted, batched atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Exits: c.exits.Load(), Serial: c.serial.Load(), I8042: c.i8042.Load(),
		OtherPorts: c.otherPorts.Load(), Virtio: c.virtio.Load(), OtherMMIO: c.otherMMIO.Load(),
		Interrupted: c.interrupted.Load(), Batched: c.batched.Load(),
	}
}

// Stats returns the exit counters so far; safe while the machine runs.
func (m *Machine) Stats() Stats { return m.bus.count.snapshot() }
