package vmm

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"256", 256, true}, {"512M", 512, true}, {"1G", 1024, true}, {"1GiB", 1024, true},
		{"2048k", 2, true}, {"268435456b", 256, true}, {" 64m ", 64, true},
		{"", 0, false}, {"0", 0, false}, {"1k", 0, false}, {"lots", 0, false}, {"-1", 0, false},
		{"99999999999G", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseMemory(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseDisk: ParseDisk never panics, and what DiskFlag writes parses back to the
// same disk (hull-vmm's flags carry disks across processes this way).
func FuzzParseDisk(f *testing.F) {
	for _, s := range []string{"a.img", "a.img,ro", "a.img,id=x", "a.img,ro,id=hull-layer-0", ",ro", "a,bogus", "a,id="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDisk(s)
		if err != nil || strings.Contains(d.ID, ",") {
			return
		}
		back, err := ParseDisk(DiskFlag(d))
		if err != nil || back != d {
			t.Fatalf("ParseDisk(DiskFlag(%+v)) = %+v, %v", d, back, err)
		}
	})
}

func TestEscapeReader(t *testing.T) {
	tests := []struct {
		in, want string
		stop     bool
	}{
		{"abc", "abc", false},
		{"a\x01xb", "a", true},
		{"\x01\x01z", "\x01z", false},
		{"\x01q", "q", false},
	}
	for _, tc := range tests {
		stopped := false
		r := &EscapeReader{R: iotest.OneByteReader(strings.NewReader(tc.in)), Stop: func() { stopped = true }}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != tc.want || stopped != tc.stop {
			t.Errorf("%q: read %q, %v, stopped %v; want %q, stopped %v", tc.in, got, err, stopped, tc.want, tc.stop)
		}
	}
}

func TestEntropy(t *testing.T) {
	a, b := make([]byte, 4096), make([]byte, 4096)
	for _, p := range [][]byte{a, b} {
		if n, err := (entropy{}).Read(p); err != nil || n != len(p) {
			t.Fatalf("Read = %d, %v; want %d", n, err, len(p))
		}
	}
	if bytes.Equal(a, b) || bytes.Equal(a, make([]byte, len(a))) {
		t.Fatal("getrandom returned the same bytes twice, or zeros")
	}
}
