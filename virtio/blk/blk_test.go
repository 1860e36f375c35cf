package blk_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hullvm/hull/memory"
	"github.com/hullvm/hull/virtio"
	"github.com/hullvm/hull/virtio/blk"
	"github.com/hullvm/hull/virtio/virtiotest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// disk makes a temp disk image of sectors sectors, sector i filled with byte i.
func disk(t testing.TB, sectors int) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for i := range sectors {
		if _, err := f.Write(bytes.Repeat([]byte{byte(i)}, blk.SectorSize)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func header(typ uint32, sector uint64) []byte {
	h := make([]byte, 16)
	binary.LittleEndian.PutUint32(h, typ)
	binary.LittleEndian.PutUint64(h[8:], sector)
	return h
}

func start(t *testing.T, cfg blk.Config) (*blk.Device, *virtiotest.Device) {
	t.Helper()
	dev, err := blk.New(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return dev, virtiotest.Start(t, dev, ^uint64(0))
}

// request sends one request and returns its status byte and the data read.
func request(t *testing.T, d *virtiotest.Device, out [][]byte, in []uint32) (byte, []byte) {
	t.Helper()
	q := d.Queues[0]
	_, ws, err := q.Add(out, in)
	if err != nil {
		t.Fatal(err)
	}
	q.Kick()
	u := q.Wait(t, d.IRQ)
	var total uint32
	for _, n := range in {
		total += n
	}
	if u.Len != total {
		t.Fatalf("used length %d, want %d", u.Len, total)
	}
	got := q.Read(ws, total)
	return got[len(got)-1], got[:len(got)-1]
}

func TestConfig(t *testing.T) {
	_, d := start(t, blk.Config{File: disk(t, 9), ReadOnly: true, ID: "rootfs"})
	if got := binary.LittleEndian.Uint64(d.Config(0, 8)); got != 9 {
		t.Fatalf("capacity %d sectors, want 9", got)
	}
	if d.Features&(1<<5) == 0 {
		t.Fatal("read-only disk without VIRTIO_BLK_F_RO")
	}
	if seg := binary.LittleEndian.Uint32(d.Config(12, 4)); seg == 0 || seg > blk.QueueSize-2 {
		t.Fatalf("seg_max %d", seg)
	}
}

func TestRequests(t *testing.T) {
	tests := []struct {
		name     string
		readOnly bool
		out      [][]byte
		in       []uint32
		status   byte
		data     []byte // what the read returns, if checked
	}{
		{"read one sector", false, [][]byte{header(0, 3)}, []uint32{512, 1}, 0, bytes.Repeat([]byte{3}, 512)},
		{"read across segments", false, [][]byte{header(0, 6)}, []uint32{100, 924, 1}, 0, append(bytes.Repeat([]byte{6}, 512), bytes.Repeat([]byte{7}, 512)...)},
		{"read last sector", false, [][]byte{header(0, 7)}, []uint32{512, 1}, 0, bytes.Repeat([]byte{7}, 512)},
		{"read past the end", false, [][]byte{header(0, 7)}, []uint32{1024, 1}, 1, nil},
		{"read beyond capacity", false, [][]byte{header(0, 8)}, []uint32{512, 1}, 1, nil},
		{"sector overflows", false, [][]byte{header(0, 1<<63)}, []uint32{512, 1}, 1, nil},
		{"sector near 2^64", false, [][]byte{header(0, ^uint64(0))}, []uint32{512, 1}, 1, nil},
		{"partial sector", false, [][]byte{header(0, 0)}, []uint32{100, 1}, 1, nil},
		{"write", false, [][]byte{header(1, 2), bytes.Repeat([]byte{0xaa}, 512)}, []uint32{1}, 0, nil},
		{"write past the end", false, [][]byte{header(1, 7), make([]byte, 1024)}, []uint32{1}, 1, nil},
		{"write to read-only disk", true, [][]byte{header(1, 2), make([]byte, 512)}, []uint32{1}, 1, nil},
		{"flush", false, [][]byte{header(4, 0)}, []uint32{1}, 0, nil},
		{"get id", false, [][]byte{header(8, 0)}, []uint32{20, 1}, 0, append([]byte("disk-7"), make([]byte, 14)...)},
		{"get id short buffer", false, [][]byte{header(8, 0)}, []uint32{4, 1}, 0, []byte("disk")},
		{"unsupported type", false, [][]byte{header(11, 0)}, []uint32{1}, 2, nil},
		{"header split", false, [][]byte{header(0, 1)[:5], header(0, 1)[5:]}, []uint32{512, 1}, 0, bytes.Repeat([]byte{1}, 512)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, d := start(t, blk.Config{File: disk(t, 8), ReadOnly: tt.readOnly, ID: "disk-7"})
			st, data := request(t, d, tt.out, tt.in)
			if st != tt.status {
				t.Fatalf("status %d, want %d", st, tt.status)
			}
			if tt.data != nil && !bytes.Equal(data, tt.data) {
				t.Fatalf("data %v..., want %v...", data[:min(8, len(data))], tt.data[:min(8, len(tt.data))])
			}
		})
	}
}

func TestWriteReachesFile(t *testing.T) {
	f := disk(t, 8)
	_, d := start(t, blk.Config{File: f, ID: "x"})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64) // two sectors
	if st, _ := request(t, d, [][]byte{header(1, 4), payload[:700], payload[700:]}, []uint32{1}); st != 0 {
		t.Fatalf("write status %d", st)
	}
	got := make([]byte, len(payload))
	if _, err := f.ReadAt(got, 4*512); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("file does not hold what the guest wrote")
	}
	if st, data := request(t, d, [][]byte{header(0, 4)}, []uint32{1024, 1}); st != 0 || !bytes.Equal(data, payload) {
		t.Fatalf("read back: status %d, equal %v", st, bytes.Equal(data, payload))
	}
}

// TestMalformed: chains without room for a header or status get nothing written and
// the device keeps going.
func TestMalformed(t *testing.T) {
	dev, d := start(t, blk.Config{File: disk(t, 8), ID: "x"})
	q := d.Queues[0]
	for _, c := range []struct {
		out [][]byte
		in  []uint32
	}{
		{[][]byte{make([]byte, 8)}, []uint32{1}}, // short header
		{[][]byte{header(0, 0)}, nil},            // no status byte
		{nil, []uint32{512}},                     // no header at all
	} {
		if _, _, err := q.Add(c.out, c.in); err != nil {
			t.Fatal(err)
		}
		q.Kick()
		if u := q.Wait(t, d.IRQ); u.Len != 0 {
			t.Fatalf("malformed request: used length %d, want 0", u.Len)
		}
	}
	if dev.Stats.Errors.Load() != 3 {
		t.Fatalf("%d errors counted, want 3", dev.Stats.Errors.Load())
	}
	if st, _ := request(t, d, [][]byte{header(0, 0)}, []uint32{512, 1}); st != 0 {
		t.Fatalf("good request after malformed ones: status %d", st)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  blk.Config
	}{
		{"no file", blk.Config{ID: "x"}},
		{"id too long", blk.Config{File: os.Stdin, ID: "0123456789abcdefghijk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := blk.New(tt.cfg, quiet()); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

// FuzzBlkRequest serves random request chains: any header, any split of the data, any
// writable length. The device must not panic, and must write the status byte only
// inside the chain.
func FuzzBlkRequest(f *testing.F) {
	f.Add(header(0, 1), uint16(512), uint16(1), []byte{})
	f.Add(header(1, 7), uint16(0), uint16(1), make([]byte, 512))
	f.Add(header(8, 0), uint16(20), uint16(1), []byte{})
	f.Add(header(4, 0), uint16(0), uint16(1), []byte{})
	f.Add(header(0, 1<<60), uint16(512), uint16(1), []byte{1})
	f.Add(header(11, 0), uint16(0), uint16(1), ranges([3]uint64{1, 2, 0}))
	f.Add(header(13, 0), uint16(0), uint16(1), ranges([3]uint64{1, 2, 1}, [3]uint64{3, 1, 0}))
	dev, err := blk.New(blk.Config{File: disk(f, 4), ID: "fuzz"}, quiet())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hdr []byte, in1, in2 uint16, data []byte) {
		g := virtiotest.NewGuest(1 << 20)
		drv, err := virtiotest.NewDriver(g, 8)
		if err != nil {
			t.Fatal(err)
		}
		q, err := virtio.NewQueue(g, drv.Layout, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, b := range [][]byte{hdr, data} {
			if len(b) > 0 {
				out = append(out, b)
			}
		}
		var in []uint32
		for _, n := range []uint16{in1, in2} {
			if n > 0 {
				in = append(in, uint32(n))
			}
		}
		if len(out)+len(in) == 0 {
			return
		}
		if _, _, err := drv.Add(out, in); err != nil {
			t.Fatal(err)
		}
		c, err := q.Pop()
		if err != nil || c == nil {
			t.Fatalf("Pop = %v, %v", c, err)
		}
		total := c.Writable()
		dev.Serve(c)
		if uint64(c.Written()) > total {
			t.Fatalf("wrote %d bytes into %d", c.Written(), total)
		}
	})
}

// BenchmarkRead4K measures 4 KiB reads through the queue against a temp file (in the
// page cache), one request per kick, as MB/s.
func BenchmarkRead4K(b *testing.B) {
	f := disk(b, 2048) // 1 MiB
	dev, err := blk.New(blk.Config{File: f, ID: "bench"}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	d := virtiotest.Start(b, dev, ^uint64(0))
	q := d.Queues[0]
	const batch = 32
	hdr, _ := d.G.Alloc(16*batch, 16) // one header and status per request in flight
	buf, _ := d.G.Alloc(4096, 4096)
	st, _ := d.G.Alloc(batch, 1)
	b.SetBytes(4096)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		for j := range n {
			h := hdr + memory.Addr(16*j)
			copy(d.G.Bytes(h, 16), header(0, uint64((i+j)*8%2048)))
			if _, err := q.AddSegs(virtiotest.Seg{Addr: h, Len: 16}, virtiotest.Seg{Addr: buf, Len: 4096, Write: true}, virtiotest.Seg{Addr: st + memory.Addr(j), Len: 1, Write: true}); err != nil {
				b.Fatal(err)
			}
		}
		q.Kick()
		for range n {
			q.Wait(b, d.IRQ)
		}
	}
	b.StopTimer()
	if dev.Stats.Errors.Load() != 0 {
		b.Fatalf("%d errors", dev.Stats.Errors.Load())
	}
}

func ranges(rs ...[3]uint64) []byte {
	var b []byte
	for _, r := range rs {
		e := make([]byte, 16)
		binary.LittleEndian.PutUint64(e, r[0])
		binary.LittleEndian.PutUint32(e[8:], uint32(r[1]))
		binary.LittleEndian.PutUint32(e[12:], uint32(r[2]))
		b = append(b, e...)
	}
	return b
}

// TestDiscardWriteZeroes: the ranges read back as zeros and the rest is untouched.
func TestDiscardWriteZeroes(t *testing.T) {
	tests := []struct {
		name     string
		readOnly bool
		typ      uint32
		data     []byte
		status   byte
		zeroed   []uint64 // sectors that must read as zeros afterwards
	}{
		{"discard", false, 11, ranges([3]uint64{1, 2, 0}), 0, []uint64{1, 2}},
		{"discard two ranges", false, 11, ranges([3]uint64{0, 1, 0}, [3]uint64{5, 1, 0}), 0, []uint64{0, 5}},
		{"discard with unmap flag", false, 11, ranges([3]uint64{1, 1, 1}), 2, nil},
		{"write zeroes", false, 13, ranges([3]uint64{3, 1, 0}), 0, []uint64{3}},
		{"write zeroes, unmap", false, 13, ranges([3]uint64{3, 2, 1}), 0, []uint64{3, 4}},
		{"unknown flag", false, 13, ranges([3]uint64{3, 1, 2}), 2, nil},
		{"past the end", false, 13, ranges([3]uint64{7, 2, 0}), 1, nil},
		{"sector overflow", false, 11, ranges([3]uint64{^uint64(0), 1, 0}), 1, nil},
		{"partial range", false, 11, ranges([3]uint64{1, 1, 0})[:10], 2, nil},
		{"read-only disk", true, 11, ranges([3]uint64{1, 1, 0}), 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := disk(t, 8)
			_, d := start(t, blk.Config{File: f, ReadOnly: tt.readOnly, ID: "x"})
			if st, _ := request(t, d, [][]byte{header(tt.typ, 0), tt.data}, []uint32{1}); st != tt.status {
				t.Fatalf("status %d, want %d", st, tt.status)
			}
			zero := map[uint64]bool{}
			for _, s := range tt.zeroed {
				zero[s] = true
			}
			for s := range uint64(8) {
				got := make([]byte, blk.SectorSize)
				if _, err := f.ReadAt(got, int64(s)*blk.SectorSize); err != nil {
					t.Fatal(err)
				}
				want := bytes.Repeat([]byte{byte(s)}, blk.SectorSize)
				if zero[s] {
					want = make([]byte, blk.SectorSize)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("sector %d holds %d..., want %d...", s, got[0], want[0])
				}
			}
		})
	}
}
