package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
)

// Zone is a range of guest MMIO addresses or I/O ports whose writes KVM appends to
// the coalesced ring instead of exiting (KVM_REGISTER_COALESCED_MMIO). Reads still
// exit. The VMM sees the writes when it drains the ring, which it must do before it
// handles any exit, so that they stay in order with the accesses that did exit.
type Zone struct {
	Addr uint64 // guest physical address, or port when PIO
	Size uint32
	PIO  bool
}

// zone mirrors struct kvm_coalesced_mmio_zone.
type zone struct {
	addr uint64
	size uint32
	pio  uint32
}

func (z Zone) raw() *zone {
	r := &zone{addr: z.Addr, size: z.Size}
	if z.PIO {
		r.pio = 1
	}
	return r
}

// RegisterCoalesced makes the guest's writes into z go to the coalesced ring.
func (vm *VM) RegisterCoalesced(z Zone) error {
	if _, err := ioctlPtr(vm.h, ioRegisterCoalescedMMIO, z.raw()); err != nil {
		return fmt.Errorf("KVM_REGISTER_COALESCED_MMIO %#x+%d: %w", z.Addr, z.Size, err)
	}
	return nil
}

// UnregisterCoalesced makes writes into z exit again. Writes already in the ring stay
// there until it is drained.
func (vm *VM) UnregisterCoalesced(z Zone) error {
	if _, err := ioctlPtr(vm.h, ioUnregisterCoalescedMMIO, z.raw()); err != nil {
		return fmt.Errorf("KVM_UNREGISTER_COALESCED_MMIO %#x+%d: %w", z.Addr, z.Size, err)
	}
	return nil
}

// Layout of the coalesced ring page (struct kvm_coalesced_mmio_ring): first and last
// (u32 each), then entries of struct kvm_coalesced_mmio (phys_addr u64, len u32, pio
// u32, data [8]u8), as many as fit in the page.
const (
	ringPage     = 4096
	ringHeader   = 8
	ringEntry    = 24
	ringEntries  = (ringPage - ringHeader) / ringEntry // KVM_COALESCED_MMIO_MAX
	maxEntryData = 8
)

// Ring is the VM's coalesced ring, mapped through a vCPU's kvm_run mapping; KVM
// appends at last and the VMM consumes from first. Drain must not be called
// concurrently with itself.
type Ring struct {
	page []byte
}

// ErrRing reports a ring whose indexes are out of range: KVM never writes such, so the
// mapping is not the ring.
var ErrRing = errors.New("coalesced ring corrupt")

// CoalescedRing returns the coalesced ring as mapped at page offset off (the value of
// KVM_CHECK_EXTENSION(KVM_CAP_COALESCED_MMIO)) of v's kvm_run mapping.
func (v *VCPU) CoalescedRing(off int) (*Ring, error) {
	start := off * ringPage
	if off <= 0 || start+ringPage > len(v.run) {
		return nil, fmt.Errorf("coalesced ring at page %d: outside the %d-byte kvm_run mapping", off, len(v.run))
	}
	return NewRing(v.run[start : start+ringPage])
}

// NewRing views page (one page of memory laid out as the coalesced ring) as a Ring.
func NewRing(page []byte) (*Ring, error) {
	if len(page) != ringPage {
		return nil, fmt.Errorf("coalesced ring: %d bytes, want %d", len(page), ringPage)
	}
	return &Ring{page: page}, nil
}

// Drain calls fn for every write in the ring, oldest first, and frees their slots.
// data aliases the ring and is valid only during the call. The entries' lengths are
// bounded by the entry's 8 data bytes whatever the ring says.
func (r *Ring) Drain(fn func(addr uint64, pio bool, data []byte)) error {
	first, last := atomic.LoadUint32(word(r.page, 0)), atomic.LoadUint32(word(r.page, 4))
	if first >= ringEntries || last >= ringEntries {
		return fmt.Errorf("%w: first %d, last %d, %d slots", ErrRing, first, last, ringEntries)
	}
	for first != last {
		e := r.page[ringHeader+int(first)*ringEntry:][:ringEntry]
		n := min(binary.LittleEndian.Uint32(e[8:12]), maxEntryData)
		fn(binary.LittleEndian.Uint64(e[0:8]), binary.LittleEndian.Uint32(e[12:16]) != 0, e[16:16+n])
		first = (first + 1) % ringEntries
		// Published after fn: KVM may reuse the slot once first has moved past it.
		atomic.StoreUint32(word(r.page, 0), first)
	}
	return nil
}
