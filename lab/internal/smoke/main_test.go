package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hullvm/hull/internal/testenv"
)

// TestRun runs the smoke guest on this host's /dev/kvm (PVM runs it too), so the program
// the nested lab copies in is known to work before a slow L1 boot.
func TestRun(t *testing.T) {
	testenv.RequireKVM(t)
	tests := []struct{ a, b uint }{{40, 2}, {0, 0}, {200, 100}}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d+%d", tc.a, tc.b), func(t *testing.T) {
			var out bytes.Buffer
			if err := run([]string{"-a", fmt.Sprint(tc.a), "-b", fmt.Sprint(tc.b)}, &out); err != nil {
				t.Fatalf("run: %v", err)
			}
			want := fmt.Sprintf("api 12\nout 0x10 %d\nhlt\n", uint8(tc.a+tc.b))
			if out.String() != want {
				t.Errorf("output %q, want %q", out.String(), want)
			}
		})
	}
}

func TestRunBadArgs(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-a", "256"}, &out); err == nil {
		t.Errorf("run -a 256 succeeded, want an error")
	}
}
