package virtio_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hullvm/hull/memory"
	"github.com/hullvm/hull/virtio"
	"github.com/hullvm/hull/virtio/virtiotest"
)

// newQueue lays out a queue of size in fresh fake memory and returns the device's view
// and the fake driver.
func newQueue(t testing.TB, size uint16, features uint64) (*virtio.Queue, *virtiotest.Driver, *int) {
	t.Helper()
	g := virtiotest.NewGuest(1 << 20)
	d, err := virtiotest.NewDriver(g, size)
	if err != nil {
		t.Fatal(err)
	}
	signals := new(int)
	q, err := virtio.NewQueue(g, d.Layout, features, func() { *signals++ })
	if err != nil {
		t.Fatal(err)
	}
	return q, d, signals
}

// echo reads a chain's readable bytes and writes them back into its writable bytes.
func echo(t testing.TB, q *virtio.Queue, c *virtio.Chain) {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(b) // a short write is fine: the chain holds what fits
	if err := q.Done(c); err != nil {
		t.Fatal(err)
	}
}

func TestQueueChain(t *testing.T) {
	q, d, _ := newQueue(t, 8, virtio.FeatureEventIdx)
	head, ws, err := d.Add([][]byte{[]byte("hello, "), []byte("world")}, []uint32{3, 20})
	if err != nil {
		t.Fatal(err)
	}
	c, err := q.Pop()
	if err != nil || c == nil {
		t.Fatalf("Pop = %v, %v", c, err)
	}
	if c.Head != head || c.Readable() != 12 || c.Writable() != 23 {
		t.Fatalf("chain head %d readable %d writable %d, want %d 12 23", c.Head, c.Readable(), c.Writable(), head)
	}
	echo(t, q, c)
	u, ok := d.Used()
	if !ok || u.ID != head || u.Len != 12 {
		t.Fatalf("used %+v %v, want id %d len 12", u, ok, head)
	}
	if got := d.Read(ws, u.Len); !bytes.Equal(got, []byte("hello, world")) {
		t.Fatalf("device wrote %q", got)
	}
	if c, err := q.Pop(); c != nil || err != nil {
		t.Fatalf("empty queue: Pop = %v, %v", c, err)
	}
	if d.AvailEvent() != 1 {
		t.Fatalf("avail_event %d after an empty Pop, want 1", d.AvailEvent())
	}
	if d.Free() != 8 {
		t.Fatalf("%d descriptors free after the chain came back, want 8", d.Free())
	}
}

func TestQueueIndirect(t *testing.T) {
	q, d, _ := newQueue(t, 4, virtio.FeatureIndirectDesc)
	g := d.G
	table, _ := g.Alloc(3*16, 16)
	in, _ := g.Alloc(5, 8)
	out, _ := g.Alloc(16, 8)
	copy(g.Bytes(in, 5), "abcde")
	tb := g.Bytes(table, 48)
	virtiotest.EncodeDesc(tb[0:], in, 2, virtiotest.FlagNext, 1)
	virtiotest.EncodeDesc(tb[16:], in+2, 3, virtiotest.FlagNext, 2)
	virtiotest.EncodeDesc(tb[32:], out, 16, virtiotest.FlagWrite, 0)
	d.SetDesc(0, table, 48, virtiotest.FlagIndirect, 0)
	d.Publish(0)
	c, err := q.Pop()
	if err != nil || c == nil {
		t.Fatalf("Pop = %v, %v", c, err)
	}
	echo(t, q, c)
	if got := string(g.Bytes(out, 5)); got != "abcde" {
		t.Fatalf("device wrote %q through an indirect table", got)
	}
}

// TestQueueHostileChains feeds malformed chains: each is returned unused with an
// ErrBadChain error, and the queue goes on serving good chains.
func TestQueueHostileChains(t *testing.T) {
	const n = virtiotest.FlagNext
	const w = virtiotest.FlagWrite
	const ind = virtiotest.FlagIndirect
	ok := memory.Addr(0x8000) // a valid buffer
	tests := []struct {
		name     string
		features uint64
		descs    []rawDesc
	}{
		{"self loop", 0, []rawDesc{{ok, 8, n, 0}}},
		{"two-descriptor loop", 0, []rawDesc{{ok, 8, n, 1}, {ok, 8, n, 0}}},
		{"loop of writable", 0, []rawDesc{{ok, 8, w | n, 1}, {ok, 8, w | n, 2}, {ok, 8, w | n, 0}}},
		{"next out of range", 0, []rawDesc{{ok, 8, n, 200}}},
		{"address past memory", 0, []rawDesc{{1 << 40, 8, 0, 0}}},
		{"address wraps", 0, []rawDesc{{^memory.Addr(0) - 4, 16, 0, 0}}},
		{"length past memory", 0, []rawDesc{{ok, 1 << 31, w, 0}}},
		{"max length", 0, []rawDesc{{0, ^uint32(0), 0, 0}}},
		{"readable after writable", 0, []rawDesc{{ok, 8, w | n, 1}, {ok, 8, 0, 0}}},
		{"indirect not negotiated", 0, []rawDesc{{ok, 16, ind, 0}}},
		{"indirect with next", virtio.FeatureIndirectDesc, []rawDesc{{ok, 16, ind | n, 1}, {ok, 8, 0, 0}}},
		{"indirect empty", virtio.FeatureIndirectDesc, []rawDesc{{ok, 0, ind, 0}}},
		{"indirect odd length", virtio.FeatureIndirectDesc, []rawDesc{{ok, 17, ind, 0}}},
		{"indirect too large", virtio.FeatureIndirectDesc, []rawDesc{{ok, 16 * 1024, ind, 0}}},
		{"indirect table out of memory", virtio.FeatureIndirectDesc, []rawDesc{{1 << 40, 32, ind, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, d, _ := newQueue(t, 8, tt.features)
			for i, x := range tt.descs {
				d.SetDesc(uint16(i), x.addr, x.len, x.flags, x.next)
			}
			d.Publish(0)
			c, err := q.Pop()
			if !errors.Is(err, virtio.ErrBadChain) || c != nil {
				t.Fatalf("Pop = %v, %v; want an ErrBadChain error", c, err)
			}
			if u, ok := d.Used(); !ok || u.ID != 0 || u.Len != 0 {
				t.Fatalf("bad chain returned as %+v %v, want id 0 len 0", u, ok)
			}
			d.SetDesc(0, ok, 8, 0, 0)
			d.Publish(0)
			if c, err := q.Pop(); err != nil || c == nil || c.Readable() != 8 {
				t.Fatalf("good chain after a bad one: Pop = %v, %v", c, err)
			}
		})
	}
}

// TestQueueNestedIndirect: an indirect table that points at another indirect table.
func TestQueueNestedIndirect(t *testing.T) {
	q, d, _ := newQueue(t, 4, virtio.FeatureIndirectDesc)
	table, _ := d.G.Alloc(16, 16)
	virtiotest.EncodeDesc(d.G.Bytes(table, 16), table, 16, virtiotest.FlagIndirect, 0)
	d.SetDesc(0, table, 16, virtiotest.FlagIndirect, 0)
	d.Publish(0)
	if _, err := q.Pop(); !errors.Is(err, virtio.ErrBadChain) {
		t.Fatalf("nested indirect: Pop error %v, want ErrBadChain", err)
	}
}

// TestQueueIndirectLoop: an indirect table whose descriptors loop.
func TestQueueIndirectLoop(t *testing.T) {
	q, d, _ := newQueue(t, 4, virtio.FeatureIndirectDesc)
	table, _ := d.G.Alloc(32, 16)
	tb := d.G.Bytes(table, 32)
	virtiotest.EncodeDesc(tb, 0x8000, 4, virtiotest.FlagNext, 1)
	virtiotest.EncodeDesc(tb[16:], 0x8000, 4, virtiotest.FlagNext, 0)
	d.SetDesc(0, table, 32, virtiotest.FlagIndirect, 0)
	d.Publish(0)
	if _, err := q.Pop(); !errors.Is(err, virtio.ErrBadChain) {
		t.Fatalf("indirect loop: Pop error %v, want ErrBadChain", err)
	}
}

// TestQueueBadRing: ring-level corruption is permanent.
func TestQueueBadRing(t *testing.T) {
	tests := []struct {
		name  string
		setup func(d *virtiotest.Driver)
	}{
		{"avail idx jumps past the queue size", func(d *virtiotest.Driver) { d.SetAvailIdx(9) }},
		{"avail idx goes backwards", func(d *virtiotest.Driver) { d.SetAvailIdx(0xffff) }},
		{"head out of range", func(d *virtiotest.Driver) { d.Publish(100) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, d, _ := newQueue(t, 8, 0)
			tt.setup(d)
			if _, err := q.Pop(); !errors.Is(err, virtio.ErrBadRing) {
				t.Fatalf("Pop error %v, want ErrBadRing", err)
			}
			if _, err := q.Pop(); !errors.Is(err, virtio.ErrBadRing) {
				t.Fatalf("second Pop error %v, want ErrBadRing again", err)
			}
		})
	}
}

// TestQueueWraparound runs the 16-bit ring indices past 65535.
func TestQueueWraparound(t *testing.T) {
	q, d, _ := newQueue(t, 4, virtio.FeatureEventIdx)
	buf, _ := d.G.Alloc(8, 8)
	for i := range 70000 {
		if _, err := d.AddSegs(virtiotest.Seg{Addr: buf, Len: 8}); err != nil {
			t.Fatal(err)
		}
		c, err := q.Pop()
		if err != nil || c == nil {
			t.Fatalf("chain %d: Pop = %v, %v", i, c, err)
		}
		if err := q.Push(c.Head, 0); err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Used(); !ok {
			t.Fatalf("chain %d not used", i)
		}
	}
	if got := d.UsedIdx(); got != uint16(70000%65536) {
		t.Fatalf("used.idx %d, want %d", got, 70000%65536)
	}
}

// TestQueueSignal checks interrupt suppression (§2.7.7, §2.7.10).
func TestQueueSignal(t *testing.T) {
	tests := []struct {
		name       string
		features   uint64
		setup      func(d *virtiotest.Driver)
		wantSignal int
	}{
		{"no suppression", 0, func(d *virtiotest.Driver) {}, 1},
		{"NO_INTERRUPT", 0, func(d *virtiotest.Driver) { d.SetAvailFlags(1) }, 0},
		{"NO_INTERRUPT ignored under EVENT_IDX", virtio.FeatureEventIdx, func(d *virtiotest.Driver) { d.SetAvailFlags(1) }, 1},
		{"used_event reached", virtio.FeatureEventIdx, func(d *virtiotest.Driver) { d.SetUsedEvent(1) }, 1},
		{"used_event far ahead", virtio.FeatureEventIdx, func(d *virtiotest.Driver) { d.SetUsedEvent(100) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, d, signals := newQueue(t, 8, tt.features)
			tt.setup(d)
			for range 2 {
				d.AddSegs(virtiotest.Seg{Addr: 0x8000, Len: 4})
				c, err := q.Pop()
				if err != nil || c == nil {
					t.Fatalf("Pop = %v, %v", c, err)
				}
				q.Done(c)
			}
			q.Signal()
			q.Signal() // nothing new: never signals
			if *signals != tt.wantSignal {
				t.Fatalf("%d interrupts, want %d", *signals, tt.wantSignal)
			}
		})
	}
}

func TestNewQueueLayout(t *testing.T) {
	g := virtiotest.NewGuest(1 << 16)
	tests := []struct {
		name string
		l    virtio.Layout
	}{
		{"size 0", virtio.Layout{Size: 0, Desc: 0x1000, Avail: 0x2000, Used: 0x3000}},
		{"size not a power of 2", virtio.Layout{Size: 6, Desc: 0x1000, Avail: 0x2000, Used: 0x3000}},
		{"descriptors misaligned", virtio.Layout{Size: 8, Desc: 0x1008, Avail: 0x2000, Used: 0x3000}},
		{"used misaligned", virtio.Layout{Size: 8, Desc: 0x1000, Avail: 0x2000, Used: 0x3002}},
		{"descriptors outside memory", virtio.Layout{Size: 8, Desc: 1 << 20, Avail: 0x2000, Used: 0x3000}},
		{"used ring crosses the end", virtio.Layout{Size: 8, Desc: 0x1000, Avail: 0x2000, Used: 1<<16 - 16}},
		{"avail ring wraps", virtio.Layout{Size: 8, Desc: 0x1000, Avail: ^memory.Addr(1), Used: 0x3000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := virtio.NewQueue(g, tt.l, 0, nil); err == nil {
				t.Fatal("NewQueue accepted a bad layout")
			}
		})
	}
}
