package vmm

import (
	"sync"

	"github.com/hullvm/hull/devices/uart"
	"github.com/hullvm/hull/kvm"
)

// serialZone is the UART's data port: the transmit register KVM batches.
var serialZone = kvm.Zone{Addr: uart.COM1, Size: 1, PIO: true}

// batcher drains the guest's batched console output (KVM's coalesced ring) into the
// UART. drain runs before every exit is handled and when the machine stops, so the
// batched bytes keep their order with the accesses that exited.
type batcher struct {
	mu     sync.Mutex
	ring   *kvm.Ring // nil: nothing batched
	serial *uart.UART
	count  *counters
	log    func(msg string, args ...any)
}

func (b *batcher) drain() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ring == nil {
		return
	}
	err := b.ring.Drain(func(addr uint64, pio bool, data []byte) {
		if pio && addr == serialZone.Addr {
			b.count.batched.Add(1)
			b.serial.Write(0, data)
		}
	})
	if err != nil {
		b.log("console batching stopped", "err", err)
		b.ring = nil
	}
}

// batchConsole lets KVM batch the guest's writes to the UART's transmit register while
// the guest polls the line status (uart.Batchable): such a write then costs no exit,
// only the status read before it does. That halves the exits of printing, and under
// PVM each exit costs about 20 µs (vcpu_load alone reads MSRs through the host), most
// of a small guest's time to its first line.
//
// Only for guests that are not Linux. Leaving the polled mode must end the batching
// (an interrupt-driven writer waits for a THRE interrupt that a batched write would
// never raise), and unregistering a zone costs 5 to 8 ms here (an SRCU grace period),
// while registering one on the new VM costs microseconds. Linux's 8250 driver leaves
// the polled mode at its probe, so for Linux batching would only cost. A guest that
// stays polled (a unikernel's console, the test guest) gains; one that leaves ends
// the batching once and for all.
func (m *Machine) batchConsole() {
	off, err := m.sys.Check(kvm.CapCoalescedMMIO)
	if err != nil || off <= 0 {
		return
	}
	if c, err := m.sys.Check(kvm.CapCoalescedPIO); err != nil || c <= 0 {
		return
	}
	ring, err := m.vcpus[0].CoalescedRing(off)
	if err != nil {
		m.log.Debug("console batching unavailable", "err", err)
		return
	}
	if !m.bus.serial.Batchable() {
		return
	}
	if err := m.vm.RegisterCoalesced(serialZone); err != nil {
		m.log.Debug("console batching unavailable", "err", err)
		return
	}
	m.bus.batch = &batcher{ring: ring, serial: m.bus.serial, count: &m.bus.count, log: m.log.Warn}
	var once sync.Once
	m.bus.serial.OnBatchable(func(on bool) {
		if on {
			return
		}
		once.Do(func() {
			if err := m.vm.UnregisterCoalesced(serialZone); err != nil {
				m.log.Warn("console batching: writes may be held until the next exit", "err", err)
			}
		})
	})
}
