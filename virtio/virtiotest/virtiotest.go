package virtiotest

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hullvm/hull/memory"
	"github.com/hullvm/hull/virtio"
)

// Descriptor flags (§2.7.5), for building chains by hand.
const (
	FlagNext     = 1
	FlagWrite    = 2
	FlagIndirect = 4
)

// Guest is fake guest memory at guest address 0 with a bump allocator.
type Guest struct {
	*memory.Guest
	next, end memory.Addr
}

// NewGuest returns size bytes of fake guest memory (a multiple of 4096).
func NewGuest(size int) *Guest {
	g, err := memory.FromRegions(memory.Region{Base: 0, Mem: make([]byte, size)})
	if err != nil {
		panic(err) // one region cannot overlap
	}
	return &Guest{Guest: g, next: 0x1000, end: memory.Addr(size)}
}

// Alloc returns n bytes of fresh zeroed guest memory aligned to align (a power of 2).
func (g *Guest) Alloc(n uint64, align uint64) (memory.Addr, error) {
	a := (g.next + memory.Addr(align-1)) &^ memory.Addr(align-1)
	if a+memory.Addr(n) > g.end || a+memory.Addr(n) < a {
		return 0, fmt.Errorf("fake guest memory exhausted allocating %d bytes", n)
	}
	g.next = a + memory.Addr(n)
	return a, nil
}

// Bytes returns the n bytes at a; it panics outside memory (a test bug).
func (g *Guest) Bytes(a memory.Addr, n uint64) []byte {
	b, err := g.Slice(a, n)
	if err != nil {
		panic(err)
	}
	return b
}

// IRQ is a fake interrupt line counting triggers.
type IRQ struct {
	n  atomic.Int64
	ch chan struct{}
}

// NewIRQ returns an interrupt line.
func NewIRQ() *IRQ { return &IRQ{ch: make(chan struct{}, 1)} }

// Trigger implements virtio.Interrupt.
func (i *IRQ) Trigger() error {
	i.n.Add(1)
	select {
	case i.ch <- struct{}{}:
	default:
	}
	return nil
}

// Count is the number of triggers so far.
func (i *IRQ) Count() int64 { return i.n.Load() }

// C receives after triggers (coalesced).
func (i *IRQ) C() <-chan struct{} { return i.ch }

// Seg is one buffer of a chain: Len bytes at Addr, device-writable if Write.
type Seg struct {
	Addr  memory.Addr
	Len   uint32
	Write bool
}

// Used is one used ring element.
type Used struct {
	ID  uint16
	Len uint32
}

// Driver is a fake driver of one split virtqueue (§2.7) in fake guest memory: it lays
// out the rings, builds chains as a guest does (or as a hostile one would), publishes
// them and reads the used ring. One goroutine uses it.
type Driver struct {
	G      *Guest
	Layout virtio.Layout
	Kick   func() // notifies the device; set by Start

	free     []uint16
	chains   map[uint16][]uint16
	availIdx uint16
	usedIdx  uint16
}

// NewDriver lays out a queue of size entries in g.
func NewDriver(g *Guest, size uint16) (*Driver, error) {
	d := &Driver{G: g, chains: map[uint16][]uint16{}, Kick: func() {}}
	var err error
	l := virtio.Layout{Size: size}
	if l.Desc, err = g.Alloc(16*uint64(size), 16); err != nil {
		return nil, err
	}
	if l.Avail, err = g.Alloc(6+2*uint64(size), 4); err != nil {
		return nil, err
	}
	if l.Used, err = g.Alloc(6+8*uint64(size), 4); err != nil {
		return nil, err
	}
	d.Layout = l
	for i := range size {
		d.free = append(d.free, i)
	}
	return d, nil
}

// SetDesc writes descriptor i of the table directly (for hostile chains).
func (d *Driver) SetDesc(i uint16, addr memory.Addr, length uint32, flags, next uint16) {
	EncodeDesc(d.G.Bytes(d.Layout.Desc+16*memory.Addr(i%d.Layout.Size), 16), addr, length, flags, next)
}

// EncodeDesc encodes one descriptor into b (16 bytes), e.g. for an indirect table.
func EncodeDesc(b []byte, addr memory.Addr, length uint32, flags, next uint16) {
	binary.LittleEndian.PutUint64(b[0:], uint64(addr))
	binary.LittleEndian.PutUint32(b[8:], length)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

// AddSegs chains segs through free descriptors and publishes the chain; it returns the
// head.
func (d *Driver) AddSegs(segs ...Seg) (uint16, error) {
	if len(segs) == 0 || len(segs) > len(d.free) {
		return 0, fmt.Errorf("chain of %d descriptors: %d free", len(segs), len(d.free))
	}
	ids := append([]uint16(nil), d.free[:len(segs)]...)
	d.free = d.free[len(segs):]
	for i, s := range segs {
		var flags, next uint16
		if s.Write {
			flags |= FlagWrite
		}
		if i+1 < len(segs) {
			flags |= FlagNext
			next = ids[i+1]
		}
		d.SetDesc(ids[i], s.Addr, s.Len, flags, next)
	}
	d.chains[ids[0]] = ids
	d.Publish(ids[0])
	return ids[0], nil
}

// Add allocates guest buffers for a chain: one readable buffer per element of out
// (holding it), then one writable buffer per element of in (of that length). It returns
// the head and the writable buffers' segments.
func (d *Driver) Add(out [][]byte, in []uint32) (uint16, []Seg, error) {
	var segs, ws []Seg
	for _, b := range out {
		a, err := d.G.Alloc(uint64(len(b)), 8)
		if err != nil {
			return 0, nil, err
		}
		copy(d.G.Bytes(a, uint64(len(b))), b)
		segs = append(segs, Seg{Addr: a, Len: uint32(len(b))})
	}
	for _, n := range in {
		a, err := d.G.Alloc(uint64(n), 8)
		if err != nil {
			return 0, nil, err
		}
		s := Seg{Addr: a, Len: n, Write: true}
		segs, ws = append(segs, s), append(ws, s)
	}
	head, err := d.AddSegs(segs...)
	return head, ws, err
}

// Read returns a copy of what the device wrote into the writable segments ws, up to n
// bytes.
func (d *Driver) Read(ws []Seg, n uint32) []byte {
	var out []byte
	for _, s := range ws {
		k := min(s.Len, n-uint32(len(out)))
		out = append(out, d.G.Bytes(s.Addr, uint64(k))...)
		if uint32(len(out)) == n {
			break
		}
	}
	return out
}

// Publish puts head in the next available ring slot and advances avail.idx.
func (d *Driver) Publish(head uint16) {
	l := d.Layout
	slot := d.availIdx % l.Size
	binary.LittleEndian.PutUint16(d.G.Bytes(l.Avail+4+2*memory.Addr(slot), 2), head)
	d.availIdx++
	store16(d.G.Bytes(l.Avail+2, 2), d.availIdx)
}

// SetAvailIdx writes avail.idx directly (for hostile rings).
func (d *Driver) SetAvailIdx(v uint16) {
	d.availIdx = v
	store16(d.G.Bytes(d.Layout.Avail+2, 2), v)
}

// SetAvailFlags writes avail.flags (VIRTQ_AVAIL_F_NO_INTERRUPT is 1).
func (d *Driver) SetAvailFlags(v uint16) { store16(d.G.Bytes(d.Layout.Avail, 2), v) }

// SetUsedEvent writes used_event (§2.7.10).
func (d *Driver) SetUsedEvent(v uint16) {
	store16(d.G.Bytes(d.Layout.Avail+4+2*memory.Addr(d.Layout.Size), 2), v)
}

// AvailEvent reads avail_event (§2.7.10).
func (d *Driver) AvailEvent() uint16 {
	return load16(d.G.Bytes(d.Layout.Used+4+8*memory.Addr(d.Layout.Size), 2))
}

// UsedIdx reads used.idx.
func (d *Driver) UsedIdx() uint16 { return load16(d.G.Bytes(d.Layout.Used+2, 2)) }

// Used returns the next used element, if any, and frees its chain's descriptors.
func (d *Driver) Used() (Used, bool) {
	if d.UsedIdx() == d.usedIdx {
		return Used{}, false
	}
	e := d.G.Bytes(d.Layout.Used+4+8*memory.Addr(d.usedIdx%d.Layout.Size), 8)
	d.usedIdx++
	u := Used{ID: uint16(binary.LittleEndian.Uint32(e)), Len: binary.LittleEndian.Uint32(e[4:])}
	if ids, ok := d.chains[u.ID]; ok {
		d.free = append(d.free, ids...)
		delete(d.chains, u.ID)
	}
	return u, true
}

// Free is the number of free descriptors.
func (d *Driver) Free() int { return len(d.free) }

// Timeout bounds every wait in this package: reaching it means the device hung.
const Timeout = 10 * time.Second

// Wait waits for the next used element, failing the test if none comes within
// Timeout. irq is the device's interrupt line.
func (d *Driver) Wait(t testing.TB, irq *IRQ) Used {
	t.Helper()
	u, ok := d.WaitFor(irq, Timeout)
	if !ok {
		t.Fatalf("no used buffer within %v (used.idx %d, seen %d)", Timeout, d.UsedIdx(), d.usedIdx)
	}
	return u
}

// WaitFor waits up to d for the next used element.
func (d *Driver) WaitFor(irq *IRQ, wait time.Duration) (Used, bool) {
	deadline := time.After(wait)
	for {
		d.SetUsedEvent(d.usedIdx) // interrupt me for the next one
		if u, ok := d.Used(); ok {
			return u, true
		}
		select {
		case <-irq.C():
		case <-time.After(5 * time.Millisecond):
			// Also poll: a hostile test may suppress interrupts.
		case <-deadline:
			return Used{}, false
		}
	}
}

// Device is a virtio device behind the MMIO transport, probed by a fake driver.
type Device struct {
	M        *virtio.MMIO
	G        *Guest
	IRQ      *IRQ
	Queues   []*Driver
	Features uint64 // negotiated
}

// Start puts dev behind an MMIO transport in 16 MiB of fake guest memory and probes it,
// accepting the offered features in want. The device is closed at the end of the test.
func Start(t testing.TB, dev virtio.Device, want uint64) *Device {
	t.Helper()
	g := NewGuest(16 << 20)
	irq := NewIRQ()
	m := virtio.NewMMIO(dev, g, irq, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	d := &Device{M: m, G: g, IRQ: irq}
	d.Probe(t, want)
	return d
}

// Probe initializes the device as Linux's virtio_mmio driver does (§3.1.1, §4.2.3):
// reset, feature negotiation, fresh queues of up to 256 entries, DRIVER_OK.
func (d *Device) Probe(t testing.TB, want uint64) {
	t.Helper()
	m, g := d.M, d.G
	if got := d.Reg(0x000); got != 0x74726976 {
		t.Fatalf("magic %#x", got)
	}
	if got := d.Reg(0x004); got != 2 {
		t.Fatalf("version %d, want 2", got)
	}
	d.SetReg(0x070, 0)
	d.SetReg(0x070, virtio.StatusAcknowledge)
	d.SetReg(0x070, virtio.StatusAcknowledge|virtio.StatusDriver)
	var offered uint64
	for sel := range uint32(2) {
		d.SetReg(0x014, sel)
		offered |= uint64(d.Reg(0x010)) << (32 * sel)
	}
	d.Features = offered & want
	for sel := range uint32(2) {
		d.SetReg(0x024, sel)
		d.SetReg(0x020, uint32(d.Features>>(32*sel)))
	}
	st := uint32(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK)
	d.SetReg(0x070, st)
	if d.Reg(0x070)&virtio.StatusFeaturesOK == 0 {
		t.Fatalf("device refused features %#x", d.Features)
	}
	d.Queues = nil
	for i := range m.NumQueues() {
		d.SetReg(0x030, uint32(i))
		size := uint16(min(d.Reg(0x034), 256))
		q, err := NewDriver(g, size)
		if err != nil {
			t.Fatal(err)
		}
		q.Kick = func() { m.Notify(i) }
		l := q.Layout
		d.SetReg(0x038, uint32(size))
		for _, r := range []struct {
			off uint64
			a   memory.Addr
		}{{0x080, l.Desc}, {0x090, l.Avail}, {0x0a0, l.Used}} {
			d.SetReg(r.off, uint32(r.a))
			d.SetReg(r.off+4, uint32(r.a>>32))
		}
		d.SetReg(0x044, 1)
		d.Queues = append(d.Queues, q)
	}
	d.SetReg(0x070, st|virtio.StatusDriverOK)
	if s := d.Reg(0x070); s&virtio.StatusNeedsReset != 0 {
		t.Fatalf("device needs reset right after DRIVER_OK (status %#x)", s)
	}
}

// Reg reads a 32-bit register of the MMIO window.
func (d *Device) Reg(off uint64) uint32 {
	var b [4]byte
	d.M.Read(off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

// SetReg writes a 32-bit register of the MMIO window.
func (d *Device) SetReg(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	d.M.Write(off, b[:])
}

// Config reads n bytes of the device configuration space at off.
func (d *Device) Config(off uint64, n int) []byte {
	b := make([]byte, n)
	d.M.Read(0x100+off, b)
	return b
}

// NeedsReset reports whether the device set DEVICE_NEEDS_RESET.
func (d *Device) NeedsReset() bool { return d.Reg(0x070)&virtio.StatusNeedsReset != 0 }

// WaitNeedsReset waits until the device sets DEVICE_NEEDS_RESET, failing the test after
// Timeout.
func (d *Device) WaitNeedsReset(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !d.NeedsReset() {
		if time.Now().After(deadline) {
			t.Fatalf("device did not set DEVICE_NEEDS_RESET within %v", Timeout)
		}
		time.Sleep(time.Millisecond)
	}
}
