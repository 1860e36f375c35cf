package bench

import (
	"os"
	"strings"
	"testing"
)

func TestParseSmapsRollup(t *testing.T) {
	in := `00400000-7ffc8a3f1000 ---p 00000000 00:00 0                          [rollup]
Rss:                4120 kB
Pss:                1033 kB
Pss_Dirty:           320 kB
Shared_Clean:       3100 kB
`
	m, err := ParseSmapsRollup(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 4120 || m.PSS != 1033 {
		t.Fatalf("got %+v, want RSS 4120 PSS 1033", m)
	}
	if _, err := ParseSmapsRollup(strings.NewReader("Rss: 12 kB\n")); err == nil {
		t.Fatal("missing Pss accepted")
	}
	if _, err := ParseSmapsRollup(strings.NewReader("Rss: x kB\nPss: 1 kB\n")); err == nil {
		t.Fatal("bad number accepted")
	}
}

func TestParseStatPPID(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"42 (sh) S 7 42 42 0 -1", 7, true},
		{"42 (a b) c) R 9 1 1", 9, true},
		{"42 (sh", 0, false},
		{"42 (sh) S", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseStatPPID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseStatPPID(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTreeMemOfThisProcess(t *testing.T) {
	m, err := TreeMem("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.PSS <= 0 || m.PSS > m.RSS {
		t.Fatalf("implausible memory of the test process: %+v", m)
	}
}
