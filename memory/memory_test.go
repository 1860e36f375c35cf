package memory

import (
	"bytes"
	"errors"
	"testing"
)

func TestSliceBounds(t *testing.T) {
	g, err := FromRegions(Region{Base: 0x1000, Mem: make([]byte, 0x1000)}, Region{Base: 0x4000, Mem: make([]byte, 0x100)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		a    Addr
		n    uint64
		ok   bool
	}{
		{"start of first", 0x1000, 16, true},
		{"whole first", 0x1000, 0x1000, true},
		{"end of first", 0x1fff, 1, true},
		{"past first", 0x1fff, 2, false},
		{"below all", 0xfff, 1, false},
		{"hole", 0x2000, 1, false},
		{"spans regions", 0x1f00, 0x2200, false},
		{"second", 0x40f0, 0x10, true},
		{"huge length", 0x1000, ^uint64(0), false},
		{"top of address space", ^Addr(0), 1, false},
		{"zero length in region", 0x4000, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := g.Slice(tc.a, tc.n)
			if tc.ok != (err == nil) {
				t.Fatalf("Slice(%#x, %d) err = %v, want ok=%v", tc.a, tc.n, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("error %v is not ErrOutOfRange", err)
			}
			if err == nil && uint64(len(b)) != tc.n {
				t.Fatalf("len = %d, want %d", len(b), tc.n)
			}
		})
	}
}

func TestReadWriteRoundTrip(t *testing.T) {
	g, err := New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	want := []byte("hull guest memory")
	if err := g.WriteAt(want, 0xff000); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if err := g.ReadAt(got, 0xff000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
	if err := g.WriteAt(want, 1<<20-4); err == nil {
		t.Fatal("write across the end of memory succeeded")
	}
}

func TestNewSplitsAroundGap(t *testing.T) {
	g, err := New(uint64(GapStart) + 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	rs := g.Regions()
	if len(rs) != 2 || rs[0].End() != GapStart || rs[1].Base != GapEnd || len(rs[1].Mem) != 1<<20 {
		t.Fatalf("regions = %d: [%#x,%#x) [%#x,+%#x)", len(rs), rs[0].Base, rs[0].End(), rs[1].Base, len(rs[1].Mem))
	}
	if _, err := g.Slice(GapStart, 1); err == nil {
		t.Fatal("the MMIO gap is addressable")
	}
}

func TestFromRegionsRejectsOverlap(t *testing.T) {
	_, err := FromRegions(Region{Base: 0, Mem: make([]byte, 0x2000)}, Region{Base: 0x1000, Mem: make([]byte, 0x10)})
	if err == nil {
		t.Fatal("overlapping regions accepted")
	}
}
