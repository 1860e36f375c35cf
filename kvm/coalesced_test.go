package kvm

import (
	"encoding/binary"
	"errors"
	"testing"
)

// fakeRing returns a ring page holding writes (port, one data byte each) from slot
// start on, as KVM appends them.
func fakeRing(start uint32, writes ...byte) []byte {
	p := make([]byte, ringPage)
	i := start
	for _, b := range writes {
		e := p[ringHeader+int(i)*ringEntry:]
		binary.LittleEndian.PutUint64(e[0:], 0x3f8)
		binary.LittleEndian.PutUint32(e[8:], 1)
		binary.LittleEndian.PutUint32(e[12:], 1)
		e[16] = b
		i = (i + 1) % ringEntries
	}
	binary.LittleEndian.PutUint32(p[0:], start)
	binary.LittleEndian.PutUint32(p[4:], i)
	return p
}

func TestRingDrainsInOrderAcrossTheWrap(t *testing.T) {
	want := "hello, ring"
	page := fakeRing(ringEntries-4, []byte(want)...) // wraps after four entries
	r, err := NewRing(page)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	err = r.Drain(func(addr uint64, pio bool, data []byte) {
		if addr != 0x3f8 || !pio || len(data) != 1 {
			t.Errorf("entry addr %#x pio %v len %d, want 0x3f8 true 1", addr, pio, len(data))
		}
		got = append(got, data...)
	})
	if err != nil || string(got) != want {
		t.Fatalf("drained %q, %v; want %q", got, err, want)
	}
	if first, last := binary.LittleEndian.Uint32(page[0:]), binary.LittleEndian.Uint32(page[4:]); first != last {
		t.Errorf("after draining first = %d, last = %d: slots not freed", first, last)
	}
	// Nothing new: nothing drained.
	if err := r.Drain(func(uint64, bool, []byte) { t.Error("drained an empty ring") }); err != nil {
		t.Fatal(err)
	}
}

func TestRingRefusesIndexesOutOfRange(t *testing.T) {
	for _, idx := range [][2]uint32{{ringEntries, 0}, {0, ringEntries}, {1 << 31, 3}} {
		page := make([]byte, ringPage)
		binary.LittleEndian.PutUint32(page[0:], idx[0])
		binary.LittleEndian.PutUint32(page[4:], idx[1])
		r, _ := NewRing(page)
		if err := r.Drain(func(uint64, bool, []byte) { t.Error("drained a corrupt ring") }); !errors.Is(err, ErrRing) {
			t.Errorf("first %d last %d: err %v, want ErrRing", idx[0], idx[1], err)
		}
	}
}

func TestRingBoundsEntryLength(t *testing.T) {
	page := fakeRing(0, 'x')
	binary.LittleEndian.PutUint32(page[ringHeader+8:], 1<<30)
	r, _ := NewRing(page)
	r.Drain(func(_ uint64, _ bool, data []byte) {
		if len(data) != maxEntryData {
			t.Errorf("entry claiming 1 GiB gave %d bytes, want %d", len(data), maxEntryData)
		}
	})
}

func TestRingMustBeAPage(t *testing.T) {
	if _, err := NewRing(make([]byte, 100)); err == nil {
		t.Error("NewRing took 100 bytes")
	}
	v := &VCPU{run: make([]byte, 3*ringPage)}
	if _, err := v.CoalescedRing(3); err == nil {
		t.Error("a ring past the mapping was accepted")
	}
	if _, err := v.CoalescedRing(0); err == nil {
		t.Error("a ring over kvm_run itself was accepted")
	}
	if _, err := v.CoalescedRing(2); err != nil {
		t.Errorf("ring at page 2 of 3: %v", err)
	}
}

// FuzzRingDrain: whatever the ring page holds, Drain ends, gives at most 8 bytes an
// entry and at most a ring's worth of entries, and never panics.
func FuzzRingDrain(f *testing.F) {
	f.Add(fakeRing(0, []byte("abc")...))
	f.Add(fakeRing(ringEntries-1, []byte("wrap")...))
	f.Fuzz(func(t *testing.T, b []byte) {
		page := make([]byte, ringPage)
		copy(page, b)
		r, _ := NewRing(page)
		n := 0
		r.Drain(func(_ uint64, _ bool, data []byte) {
			n++
			if len(data) > maxEntryData {
				t.Fatalf("entry of %d bytes", len(data))
			}
		})
		if n >= ringEntries {
			t.Fatalf("%d entries from a ring of %d slots", n, ringEntries)
		}
	})
}
