package net_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	vnet "github.com/hullvm/hull/virtio/net"
	"github.com/hullvm/hull/virtio/virtiotest"
)

var mac = [6]byte{0x02, 0x68, 0x75, 0x6c, 0x6c, 0x01}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// pair returns the device's end and the host's end of a SOCK_SEQPACKET socketpair: one
// frame per read or write, like a tap.
func pair(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "dev"), os.NewFile(uintptr(fds[1]), "host")
	t.Cleanup(func() { a.Close(); b.Close() })
	b.SetDeadline(time.Now().Add(virtiotest.Timeout))
	return a, b
}

func start(t *testing.T, features uint64) (*vnet.Device, *virtiotest.Device, *os.File) {
	t.Helper()
	a, b := pair(t)
	dev, err := vnet.New(vnet.Config{Backend: a, MAC: mac}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return dev, virtiotest.Start(t, dev, features), b
}

const mrgRxbuf = 1 << 15

func frame(n int) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = byte(i * 7)
	}
	return f
}

func TestConfig(t *testing.T) {
	_, d, _ := start(t, ^uint64(0))
	if got := d.Config(0, 6); !bytes.Equal(got, mac[:]) {
		t.Fatalf("config MAC %x, want %x", got, mac)
	}
	if st := binary.LittleEndian.Uint16(d.Config(6, 2)); st&1 == 0 {
		t.Fatal("link not up in config status")
	}
}

func TestTx(t *testing.T) {
	tests := []struct {
		name string
		out  [][]byte
		want []byte // what the host reads; nil: nothing (dropped)
	}{
		{"header and frame", [][]byte{make([]byte, 12), frame(60)}, append(make([]byte, 12), frame(60)...)},
		{"one buffer", [][]byte{append(make([]byte, 12), frame(100)...)}, append(make([]byte, 12), frame(100)...)},
		{"gso header cleared", [][]byte{{1, 4, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0}, frame(60)}, append(make([]byte, 12), frame(60)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev, d, host := start(t, ^uint64(0))
			q := d.Queues[1]
			if _, _, err := q.Add(tt.out, nil); err != nil {
				t.Fatal(err)
			}
			q.Kick()
			if u := q.Wait(t, d.IRQ); u.Len != 0 {
				t.Fatalf("tx used length %d, want 0", u.Len)
			}
			got := make([]byte, 70000)
			n, err := host.Read(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:n], tt.want) {
				t.Fatalf("host got %x, want %x", got[:n], tt.want)
			}
			if dev.Stats.TxFrames.Load() != 1 {
				t.Fatalf("%d tx frames counted", dev.Stats.TxFrames.Load())
			}
		})
	}
}

// TestTxMalformed: chains shorter than a header or longer than a frame are dropped and
// the device goes on.
func TestTxMalformed(t *testing.T) {
	dev, d, host := start(t, ^uint64(0))
	q := d.Queues[1]
	for _, out := range [][][]byte{{make([]byte, 5)}, {make([]byte, 12), make([]byte, 70000)}, {make([]byte, 12), frame(20)}} {
		if _, _, err := q.Add(out, nil); err != nil {
			t.Fatal(err)
		}
		q.Kick()
		q.Wait(t, d.IRQ)
	}
	got := make([]byte, 100)
	n, err := host.Read(got)
	if err != nil || n != 32 {
		t.Fatalf("host read %d bytes, %v; want the one good 32-byte frame", n, err)
	}
	if dev.Stats.TxDropped.Load() != 2 {
		t.Fatalf("%d tx frames dropped, want 2", dev.Stats.TxDropped.Load())
	}
}

// rx posts buffers of the given sizes and returns their writable segments by head.
func post(t *testing.T, d *virtiotest.Device, sizes ...uint32) map[uint16][]virtiotest.Seg {
	t.Helper()
	q := d.Queues[0]
	bufs := map[uint16][]virtiotest.Seg{}
	for _, n := range sizes {
		head, ws, err := q.Add(nil, []uint32{n})
		if err != nil {
			t.Fatal(err)
		}
		bufs[head] = ws
	}
	q.Kick()
	return bufs
}

func hostFrame(n int) []byte { return append(make([]byte, 12), frame(n)...) }

func TestRx(t *testing.T) {
	dev, d, host := start(t, ^uint64(0)&^mrgRxbuf)
	bufs := post(t, d, 1526, 1526)
	host.Write(hostFrame(1000))
	q := d.Queues[0]
	u := q.Wait(t, d.IRQ)
	got := q.Read(bufs[u.ID], u.Len)
	if u.Len != 1012 || binary.LittleEndian.Uint16(got[10:]) != 1 || !bytes.Equal(got[12:], frame(1000)) {
		t.Fatalf("rx used %+v, num_buffers %d", u, binary.LittleEndian.Uint16(got[10:]))
	}
	// Too big for one buffer without VIRTIO_NET_F_MRG_RXBUF: dropped; the next frame
	// still comes.
	host.Write(hostFrame(3000))
	host.Write(hostFrame(64))
	if u := q.Wait(t, d.IRQ); u.Len != 0 {
		t.Fatalf("oversized frame: used length %d, want 0", u.Len)
	}
	post(t, d, 1526)
	if u := q.Wait(t, d.IRQ); u.Len != 76 {
		t.Fatalf("frame after a dropped one: used length %d, want 76", u.Len)
	}
	if dev.Stats.RxDropped.Load() != 1 || dev.Stats.RxFrames.Load() != 2 {
		t.Fatalf("rx frames %d dropped %d, want 2 and 1", dev.Stats.RxFrames.Load(), dev.Stats.RxDropped.Load())
	}
}

// TestRxMergeable: a frame spread over several buffers, num_buffers saying how many.
func TestRxMergeable(t *testing.T) {
	_, d, host := start(t, ^uint64(0))
	if d.Features&mrgRxbuf == 0 {
		t.Fatal("VIRTIO_NET_F_MRG_RXBUF not offered")
	}
	host.Write(hostFrame(3000)) // before any buffer: the device waits for them
	bufs := post(t, d, 1024, 1024, 1024, 1024)
	q := d.Queues[0]
	var got []byte
	for range 3 {
		u := q.Wait(t, d.IRQ)
		got = append(got, q.Read(bufs[u.ID], u.Len)...)
	}
	if n := binary.LittleEndian.Uint16(got[10:]); n != 3 {
		t.Fatalf("num_buffers %d, want 3", n)
	}
	if !bytes.Equal(got[12:], frame(3000)) {
		t.Fatal("merged frame differs")
	}
}

// TestReset: a reset stops both workers even while rx waits for buffers.
func TestReset(t *testing.T) {
	_, d, host := start(t, ^uint64(0))
	host.Write(hostFrame(100)) // rx now waits for a buffer
	d.SetReg(0x070, 0)
	if d.Reg(0x070) != 0 {
		t.Fatal("status not 0 after reset")
	}
	d.Probe(t, ^uint64(0))
	bufs := post(t, d, 2048)
	host.Write(hostFrame(50))
	q := d.Queues[0]
	u := q.Wait(t, d.IRQ)
	if got := q.Read(bufs[u.ID], u.Len); len(got) < 12 {
		t.Fatalf("after re-init: used %+v", u)
	}
}

func TestValidate(t *testing.T) {
	a, _ := pair(t)
	tests := []vnet.Config{
		{MAC: mac},
		{Backend: a},
		{Backend: a, MAC: [6]byte{1, 2, 3, 4, 5, 6}},
	}
	for _, c := range tests {
		if _, err := vnet.New(c, quiet()); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
