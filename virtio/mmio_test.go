package virtio_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/hullvm/hull/virtio"
	"github.com/hullvm/hull/virtio/virtiotest"
)

// echoDev has one queue; it copies each chain's readable bytes into its writable bytes.
type echoDev struct {
	runs, stops atomic.Int32
	config      [8]byte
}

func (e *echoDev) Type() virtio.Type                   { return 99 }
func (e *echoDev) Features() uint64                    { return 1 << 3 }
func (e *echoDev) QueueSizes() []uint16                { return []uint16{16} }
func (e *echoDev) ReadConfig(off uint64, data []byte)  { readConfig(e.config[:], off, data) }
func (e *echoDev) WriteConfig(off uint64, data []byte) {}

func readConfig(cfg []byte, off uint64, data []byte) {
	if off < uint64(len(cfg)) {
		copy(data, cfg[off:])
	}
}

func (e *echoDev) Run(ctx context.Context, features uint64, qs []*virtio.Queue) error {
	e.runs.Add(1)
	defer e.stops.Add(1)
	q := qs[0]
	if !q.Ready() {
		return virtio.ErrNotReady
	}
	for {
		for {
			c, err := q.Pop()
			if errors.Is(err, virtio.ErrBadChain) {
				continue
			}
			if err != nil {
				return err
			}
			if c == nil {
				break
			}
			b, _ := io.ReadAll(c)
			c.Write(b)
			if err := q.Done(c); err != nil {
				return err
			}
		}
		q.Signal()
		select {
		case <-ctx.Done():
			return nil
		case <-q.Kicks():
		}
	}
}

func TestMMIOEcho(t *testing.T) {
	dev := &echoDev{}
	binary.LittleEndian.PutUint64(dev.config[:], 0x1122334455667788)
	d := virtiotest.Start(t, dev, ^uint64(0))
	want := uint64(1<<3) | virtio.FeatureVersion1 | virtio.FeatureEventIdx | virtio.FeatureIndirectDesc
	if d.Features != want {
		t.Fatalf("negotiated %#x, want %#x", d.Features, want)
	}
	if got := binary.LittleEndian.Uint64(d.Config(0, 8)); got != 0x1122334455667788 {
		t.Fatalf("config %#x", got)
	}
	if got := d.Reg(0x008); got != 99 {
		t.Fatalf("device id %d", got)
	}
	q := d.Queues[0]
	for i := range 40 { // more than the queue size: descriptors are recycled
		_, ws, err := q.Add([][]byte{{byte(i), 2, 3}}, []uint32{8})
		if err != nil {
			t.Fatal(err)
		}
		q.Kick()
		u := q.Wait(t, d.IRQ)
		if u.Len != 3 || q.Read(ws, 3)[0] != byte(i) {
			t.Fatalf("request %d: used %+v, data %v", i, u, q.Read(ws, 3))
		}
	}
	if isr := d.Reg(0x060); isr&1 == 0 && d.IRQ.Count() == 0 {
		t.Fatalf("no used-buffer interrupt (status %#x)", isr)
	}
	d.SetReg(0x064, 1)
	if isr := d.Reg(0x060); isr != 0 {
		t.Fatalf("interrupt status %#x after ack", isr)
	}
}

// TestMMIOWriteNotify: a QueueNotify write (no ioeventfd) kicks the queue too.
func TestMMIOWriteNotify(t *testing.T) {
	d := virtiotest.Start(t, &echoDev{}, ^uint64(0))
	q := d.Queues[0]
	q.Add([][]byte{{1}}, []uint32{1})
	d.SetReg(virtio.NotifyOffset, 0)
	if u := q.Wait(t, d.IRQ); u.Len != 1 {
		t.Fatalf("used %+v", u)
	}
}

func TestMMIOReset(t *testing.T) {
	dev := &echoDev{}
	d := virtiotest.Start(t, dev, ^uint64(0))
	d.SetReg(0x070, 0)
	if dev.runs.Load() != 1 || dev.stops.Load() != 1 {
		t.Fatalf("after reset: %d runs, %d stops; want the worker stopped", dev.runs.Load(), dev.stops.Load())
	}
	if s := d.Reg(0x070); s != 0 {
		t.Fatalf("status %#x after reset", s)
	}
	d.SetReg(0x030, 0)
	if d.Reg(0x044) != 0 {
		t.Fatal("queue still ready after reset")
	}
	// The driver can set the device up again.
	d.Probe(t, ^uint64(0))
	q := d.Queues[0]
	q.Add([][]byte{{7}}, []uint32{1})
	q.Kick()
	if u := q.Wait(t, d.IRQ); u.Len != 1 {
		t.Fatalf("used %+v after re-init", u)
	}
}

// TestMMIORingErrors: a broken ring makes the device set DEVICE_NEEDS_RESET and stop.
func TestMMIORingErrors(t *testing.T) {
	dev := &echoDev{}
	d := virtiotest.Start(t, dev, ^uint64(0))
	d.Queues[0].SetAvailIdx(1000)
	d.Queues[0].Kick()
	d.WaitNeedsReset(t)
	if d.Reg(0x060)&2 == 0 {
		t.Fatal("no configuration change interrupt with DEVICE_NEEDS_RESET")
	}
	d.SetReg(0x070, 0)
	if d.NeedsReset() {
		t.Fatal("DEVICE_NEEDS_RESET survives a reset")
	}
}

// probe runs the driver's side of initialization up to FEATURES_OK.
func probe(t *testing.T, d *virtiotest.Device, features uint64) {
	t.Helper()
	d.SetReg(0x070, 0)
	d.SetReg(0x070, virtio.StatusAcknowledge|virtio.StatusDriver)
	for sel := range uint32(2) {
		d.SetReg(0x024, sel)
		d.SetReg(0x020, uint32(features>>(32*sel)))
	}
	d.SetReg(0x070, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK)
}

func TestMMIOFeatures(t *testing.T) {
	tests := []struct {
		name     string
		features uint64
		ok       bool
	}{
		{"version 1 only", virtio.FeatureVersion1, true},
		{"all offered", virtio.FeatureVersion1 | virtio.FeatureEventIdx | 1<<3, true},
		{"legacy driver", 1 << 3, false},
		{"not offered", virtio.FeatureVersion1 | 1<<4, false},
		{"high bit not offered", virtio.FeatureVersion1 | 1<<40, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := virtiotest.Start(t, &echoDev{}, ^uint64(0))
			probe(t, d, tt.features)
			if got := d.Reg(0x070)&virtio.StatusFeaturesOK != 0; got != tt.ok {
				t.Fatalf("FEATURES_OK %v, want %v", got, tt.ok)
			}
		})
	}
}

// TestMMIOBadQueueSetup: a queue the driver set up wrongly fails DRIVER_OK with
// DEVICE_NEEDS_RESET instead of starting the device.
func TestMMIOBadQueueSetup(t *testing.T) {
	tests := []struct {
		name string
		reg  uint64
		v    uint32
	}{
		{"size not a power of 2", 0x038, 12},
		{"size above the maximum", 0x038, 32},
		{"size far too large", 0x038, 1 << 20},
		{"descriptors outside memory", 0x084, 0x10},
		{"used ring misaligned", 0x0a0, 0x2002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := &echoDev{}
			d := virtiotest.Start(t, dev, ^uint64(0))
			probe(t, d, virtio.FeatureVersion1)
			d.SetReg(0x030, 0)
			d.SetReg(0x038, 16)
			d.SetReg(0x080, 0x1000)
			d.SetReg(0x090, 0x2000)
			d.SetReg(0x0a0, 0x3000)
			d.SetReg(tt.reg, tt.v)
			d.SetReg(0x044, 1)
			d.SetReg(0x070, d.Reg(0x070)|virtio.StatusDriverOK)
			if !d.NeedsReset() {
				t.Fatal("device started with a bad queue")
			}
			if dev.runs.Load() != 1 { // the run from Start, not a second one
				t.Fatalf("%d runs, want 1", dev.runs.Load())
			}
		})
	}
}

func TestMMIOConfigGeneration(t *testing.T) {
	d := virtiotest.Start(t, &echoDev{}, ^uint64(0))
	g := d.Reg(0x0fc)
	d.M.ConfigChanged()
	if d.Reg(0x0fc) == g {
		t.Fatal("config generation did not change")
	}
	if d.Reg(0x060)&2 == 0 {
		t.Fatal("no configuration change interrupt")
	}
}

// TestMMIOOddAccesses: accesses of the wrong width or place do nothing and never panic.
func TestMMIOOddAccesses(t *testing.T) {
	d := virtiotest.Start(t, &echoDev{}, ^uint64(0))
	for off := uint64(0); off < 0x1100; off++ {
		for _, n := range []int{0, 1, 2, 3, 4, 8} {
			b := make([]byte, n)
			d.M.Read(off, b)
			if off != 0x070 && off != 0x064 && off != 0x050 {
				d.M.Write(off, b)
			}
		}
	}
	d.M.Notify(-1)
	d.M.Notify(1 << 20)
}

// TestMMIONotifyDuringReset: ioeventfd notifications may arrive at any time, also while
// the driver resets and sets the device up again (run with -race).
func TestMMIONotifyDuringReset(t *testing.T) {
	dev := &echoDev{}
	d := virtiotest.Start(t, dev, ^uint64(0))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				d.M.Notify(0)
			}
		}
	}()
	for range 20 {
		d.Probe(t, ^uint64(0))
		q := d.Queues[0]
		q.Add([][]byte{{1}}, []uint32{1})
		q.Kick()
		q.Wait(t, d.IRQ)
	}
	close(stop)
	<-done
	if runs, stops := dev.runs.Load(), dev.stops.Load(); runs != 21 || stops != 20 {
		t.Fatalf("%d runs and %d stops, want 21 and 20", runs, stops)
	}
}
