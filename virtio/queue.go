package virtio

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/hullvm/hull/memory"
)

// Descriptor flags (§2.7.5).
const (
	descNext     = 1
	descWrite    = 2
	descIndirect = 4
)

// availNoInterrupt is VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7).
const availNoInterrupt = 1

// Queue is one split virtqueue (§2.7) seen from the device. The driver sets it up through
// the transport; once the device runs, one goroutine at a time uses it (Pop, Push,
// Signal). Every index the guest writes is checked: a malformed chain is an ErrBadChain
// error, a malformed ring an ErrBadRing error, never a panic or an endless loop.
type Queue struct {
	max  uint16
	kick chan struct{} // never changes: Notify runs on any goroutine
	queueState
}

// queueState is what a reset forgets (§2.1).
type queueState struct {
	// Set by the transport while the device is stopped.
	num                 uint32 // the size the driver wrote, checked by activate
	ready               bool
	descAddr, availAddr memory.Addr
	usedAddr            memory.Addr

	// Set by activate; then used by the device's goroutine only.
	size                  uint16
	eventIdx, indirect    bool
	signal                func() // raises the used-buffer interrupt
	mem                   Memory
	desc, availRing, used []byte
	availIdx, usedEvent   field16
	usedIdxF, availEvent  field16
	availFlags            field16
	lastAvail, nextUsed   uint16
	signalled             uint16 // used idx at the last Signal
	broken                error
}

func newQueue(max uint16) *Queue {
	return &Queue{max: max, kick: make(chan struct{}, 1)}
}

// Ready reports whether the driver set the queue up.
func (q *Queue) Ready() bool { return q.ready }

// Size is the queue size the driver chose.
func (q *Queue) Size() uint16 { return q.size }

// Kicks delivers the driver's notifications (coalesced): wait on it when Pop finds
// nothing.
func (q *Queue) Kicks() <-chan struct{} { return q.kick }

// Serve is the loop of a device with one request queue: drain serves every available
// request, then Serve waits for the driver's next kick, until ctx ends (nil) or drain
// fails (its error). It refuses a queue the driver did not set up.
func (q *Queue) Serve(ctx context.Context, drain func(*Queue) error) error {
	if !q.Ready() {
		return fmt.Errorf("request queue: %w", ErrNotReady)
	}
	for {
		if err := drain(q); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.Kicks():
		}
	}
}

// Notify records a driver notification; it never blocks.
func (q *Queue) Notify() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// reset forgets the driver's setup (§2.1: a reset returns queues to their initial state).
func (q *Queue) reset() {
	q.queueState = queueState{}
}

// activate maps the rings the driver described into mem, checking sizes and alignment
// (§2.7: descriptor table 16-byte, available ring 2-byte, used ring 4-byte aligned).
func (q *Queue) activate(mem Memory, features uint64, signal func()) error {
	if q.num == 0 || q.num&(q.num-1) != 0 || q.num > uint32(q.max) {
		return fmt.Errorf("queue size %d: must be a power of 2 no larger than %d", q.num, q.max)
	}
	n := uint16(q.num)
	q.size = n
	if q.descAddr%16 != 0 || q.availAddr%2 != 0 || q.usedAddr%4 != 0 {
		return fmt.Errorf("queue rings at %#x/%#x/%#x: misaligned", uint64(q.descAddr), uint64(q.availAddr), uint64(q.usedAddr))
	}
	var err error
	if q.desc, err = mem.Slice(q.descAddr, 16*uint64(n)); err != nil {
		return fmt.Errorf("descriptor table: %w", err)
	}
	if q.availRing, err = mem.Slice(q.availAddr+4, 2*uint64(n)); err != nil {
		return fmt.Errorf("available ring: %w", err)
	}
	if q.used, err = mem.Slice(q.usedAddr+4, 8*uint64(n)); err != nil {
		return fmt.Errorf("used ring: %w", err)
	}
	for _, f := range []struct {
		p *field16
		a memory.Addr
	}{
		{&q.availFlags, q.availAddr},
		{&q.availIdx, q.availAddr + 2},
		{&q.usedEvent, q.availAddr + 4 + 2*memory.Addr(n)},
		{&q.usedIdxF, q.usedAddr + 2},
		{&q.availEvent, q.usedAddr + 4 + 8*memory.Addr(n)},
	} {
		if *f.p, err = mapField16(mem, f.a); err != nil {
			return err
		}
	}
	q.mem = mem
	q.eventIdx = features&FeatureEventIdx != 0
	q.indirect = features&FeatureIndirectDesc != 0
	q.signal = signal
	q.lastAvail, q.nextUsed, q.signalled = 0, 0, 0
	q.broken = nil
	return nil
}

// Pop takes the next available descriptor chain, or returns nil, nil when there is
// none (it then asks the driver for a notification of the next one, §2.7.10). An
// ErrBadChain error means that chain was returned to the driver unused: call Pop again.
// An ErrBadRing error is permanent.
func (q *Queue) Pop() (*Chain, error) {
	if q.broken != nil {
		return nil, q.broken
	}
	if !q.ready || q.desc == nil {
		return nil, fmt.Errorf("%w: pop from a queue that is not running", ErrBadRing)
	}
	idx := q.availIdx.load()
	if idx == q.lastAvail {
		if q.eventIdx {
			// Ask to be kicked for the next buffer, then look again: the driver
			// may have added one before it saw avail_event (§2.7.10).
			q.availEvent.store(q.lastAvail)
			idx = q.availIdx.load()
		}
		if idx == q.lastAvail {
			return nil, nil
		}
	}
	if pending := idx - q.lastAvail; pending > q.size {
		q.broken = fmt.Errorf("%w: available index %d is %d ahead of %d, queue size %d", ErrBadRing, idx, pending, q.lastAvail, q.size)
		return nil, q.broken
	}
	slot := q.lastAvail % q.size
	head := binary.LittleEndian.Uint16(q.availRing[2*slot:])
	q.lastAvail++
	if head >= q.size {
		q.broken = fmt.Errorf("%w: head descriptor %d out of range (queue size %d)", ErrBadRing, head, q.size)
		return nil, q.broken
	}
	c := &Chain{Head: head}
	if err := q.walk(c); err != nil {
		if perr := q.Push(head, 0); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("%w: head %d: %v", ErrBadChain, head, err)
	}
	return c, nil
}

// walk follows the chain from c.Head, mapping every buffer (§2.7.5, §2.7.5.3). A chain
// is at most the queue size long (an indirect table at most its own entry count), so a
// loop ends as an error.
func (q *Queue) walk(c *Chain) error {
	table := q.desc
	i := uint32(c.Head)
	limit := uint32(q.size)
	indirect := false
	writing := false
	for n := uint32(0); ; n++ {
		if n >= limit {
			return fmt.Errorf("chain longer than %d descriptors (a loop?)", limit)
		}
		if uint64(i) >= uint64(len(table))/16 {
			return fmt.Errorf("descriptor index %d out of range", i)
		}
		d := table[16*i : 16*i+16]
		addr := memory.Addr(binary.LittleEndian.Uint64(d[0:]))
		length := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])
		if flags&descIndirect != 0 {
			switch {
			case !q.indirect:
				return fmt.Errorf("indirect descriptor without VIRTIO_F_INDIRECT_DESC")
			case indirect:
				return fmt.Errorf("nested indirect descriptor")
			case flags&descNext != 0:
				return fmt.Errorf("indirect descriptor with NEXT set")
			case length == 0 || length%16 != 0 || length/16 > uint32(q.size):
				return fmt.Errorf("indirect table of %d bytes: want a non-zero multiple of 16 up to %d entries", length, q.size)
			}
			t, err := q.mem.Slice(addr, uint64(length))
			if err != nil {
				return fmt.Errorf("indirect table: %w", err)
			}
			table, i, n, limit, indirect = t, 0, ^uint32(0), length/16, true
			continue // n wraps to 0
		}
		w := flags&descWrite != 0
		if writing && !w {
			return fmt.Errorf("device-readable descriptor after a device-writable one")
		}
		writing = w
		if length > 0 {
			b, err := q.mem.Slice(addr, uint64(length))
			if err != nil {
				return fmt.Errorf("descriptor %d: %w", i, err)
			}
			if w {
				c.w = append(c.w, b)
				c.writable += uint64(length)
			} else {
				c.r = append(c.r, b)
				c.readable += uint64(length)
			}
		}
		if flags&descNext == 0 {
			return nil
		}
		i = uint32(next)
	}
}

// Push returns the chain with head to the driver with written bytes written (§2.7.8).
func (q *Queue) Push(head uint16, written uint32) error {
	if q.broken != nil {
		return q.broken
	}
	if q.used == nil {
		return fmt.Errorf("%w: push to a queue that is not running", ErrBadRing)
	}
	e := q.used[8*(q.nextUsed%q.size):]
	binary.LittleEndian.PutUint32(e[0:], uint32(head))
	binary.LittleEndian.PutUint32(e[4:], written)
	q.nextUsed++
	q.usedIdxF.store(q.nextUsed) // after the element: the store is a full barrier
	return nil
}

// Done returns c to the driver with what the device wrote into it.
func (q *Queue) Done(c *Chain) error { return q.Push(c.Head, c.Written()) }

// Signal interrupts the driver if it wants to hear of the buffers pushed since the last
// Signal: with VIRTIO_F_EVENT_IDX when used_event was passed (§2.7.10), otherwise unless
// it set VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7).
func (q *Queue) Signal() {
	if q.used == nil || q.signal == nil {
		return
	}
	old, now := q.signalled, q.nextUsed
	if old == now {
		return
	}
	q.signalled = now
	if q.eventIdx {
		ev := q.usedEvent.load()
		if now-ev-1 >= now-old { // !vring_need_event(ev, now, old)
			return
		}
	} else if q.availFlags.load()&availNoInterrupt != 0 {
		return
	}
	q.signal()
}

// Layout is where the driver placed a queue's rings and how large it made it.
type Layout struct {
	Size              uint16
	Desc, Avail, Used memory.Addr
}

// NewQueue returns a queue the driver has already set up, for transports other than
// MMIO and for tests; signal raises the used-buffer interrupt (nil: none). It checks the
// layout as DRIVER_OK does.
func NewQueue(mem Memory, l Layout, features uint64, signal func()) (*Queue, error) {
	q := newQueue(l.Size)
	q.num, q.descAddr, q.availAddr, q.usedAddr, q.ready = uint32(l.Size), l.Desc, l.Avail, l.Used, true
	if err := q.activate(mem, features, signal); err != nil {
		return nil, err
	}
	return q, nil
}
