package virtio_test

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/hullvm/hull/memory"
	"github.com/hullvm/hull/virtio"
	"github.com/hullvm/hull/virtio/virtiotest"
)

// FuzzQueue processes random descriptor tables and available rings: the queue must
// return chains, ErrBadChain or ErrBadRing, never panic or loop, and never report more
// bytes than a chain holds.
//
// Input: byte 0 picks the features, bytes 1-2 avail.idx, then the descriptor table
// (8 entries, 128 bytes), then the available ring (8 entries); the rest fills guest
// memory from 0x8000, where an indirect table may live.
func FuzzQueue(f *testing.F) {
	f.Add(seedQueue(3, 1, []rawDesc{{0x8000, 16, 1, 1}, {0x8100, 16, 2, 0}}, []uint16{0}))
	f.Add(seedQueue(0, 1, []rawDesc{{0x8000, 16, 1, 0}}, []uint16{0}))
	f.Add(seedQueue(1, 2, []rawDesc{{0x8000, 32, 4, 0}, {0x8000, 8, 0, 0}}, []uint16{0, 1}))
	f.Add(seedQueue(3, 9, nil, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		const size = 8
		g := virtiotest.NewGuest(1 << 16)
		d, err := virtiotest.NewDriver(g, size)
		if err != nil {
			t.Fatal(err)
		}
		var features uint64
		if len(data) > 0 {
			if data[0]&1 != 0 {
				features |= virtio.FeatureIndirectDesc
			}
			if data[0]&2 != 0 {
				features |= virtio.FeatureEventIdx
			}
			data = data[1:]
		}
		var idx uint16
		if len(data) >= 2 {
			idx = binary.LittleEndian.Uint16(data)
			data = data[2:]
		}
		data = data[copy(g.Bytes(d.Layout.Desc, 16*size), data):]
		data = data[copy(g.Bytes(d.Layout.Avail+4, 2*size), data):]
		copy(g.Bytes(0x8000, 0x8000), data)
		q, err := virtio.NewQueue(g, d.Layout, features, func() {})
		if err != nil {
			t.Fatal(err)
		}
		d.SetAvailIdx(idx)
		for range 2 * size {
			c, err := q.Pop()
			if errors.Is(err, virtio.ErrBadChain) {
				continue
			}
			if err != nil {
				if !errors.Is(err, virtio.ErrBadRing) {
					t.Fatalf("Pop error %v is neither ErrBadChain nor ErrBadRing", err)
				}
				return
			}
			if c == nil {
				return
			}
			total := c.Writable()
			b, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(b)
			if uint64(c.Written()) > total {
				t.Fatalf("wrote %d bytes into a chain of %d", c.Written(), total)
			}
			if err := q.Done(c); err != nil {
				t.Fatal(err)
			}
			q.Signal()
		}
	})
}

type rawDesc struct {
	addr  memory.Addr
	len   uint32
	flags uint16
	next  uint16
}

func seedQueue(features byte, idx uint16, descs []rawDesc, ring []uint16) []byte {
	b := []byte{features, byte(idx), byte(idx >> 8)}
	table := make([]byte, 128)
	for i, d := range descs {
		virtiotest.EncodeDesc(table[16*i:], d.addr, d.len, d.flags, d.next)
	}
	b = append(b, table...)
	r := make([]byte, 16)
	for i, h := range ring {
		binary.LittleEndian.PutUint16(r[2*i:], h)
	}
	b = append(b, r...)
	// An indirect table at 0x8000: two descriptors, readable then writable.
	ind := make([]byte, 32)
	virtiotest.EncodeDesc(ind, 0x9000, 8, 1, 1)
	virtiotest.EncodeDesc(ind[16:], 0x9100, 8, 2, 0)
	return append(b, ind...)
}
