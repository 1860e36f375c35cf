package lab_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/lab"
)

// labConfig is the lab from the cache (HULL_CACHE or /var/cache/hull), or a skip (a
// failure under CI) when it is not there.
func labConfig(t *testing.T) lab.Config {
	t.Helper()
	if testenv.Short() {
		t.Skip("the nested lab boots a Linux under QEMU TCG: left out by -short")
	}
	d := cache.Dir(cache.DefaultDir)
	if v := os.Getenv("HULL_CACHE"); v != "" {
		d = cache.Dir(v)
	}
	testenv.RequireBinary(t, lab.DefaultQEMU)
	testenv.RequireFile(t, d.LabKernel(), "the lab's L1 kernel")
	testenv.RequireFile(t, d.LabBusybox(), "the lab's busybox")
	testenv.RequireFile(t, filepath.Join(d.LabModules(), "kvm-amd.ko"), "the lab's kvm-amd module")
	cfg := lab.Default(d)
	cfg.Log = logWriter{t}
	return cfg
}

// buildSmoke builds the static smoke program into a temporary folder.
func buildSmoke(t *testing.T) string {
	t.Helper()
	gobin := testenv.RequireBinary(t, "go")
	out := filepath.Join(t.TempDir(), "smoke")
	cmd := exec.Command(gobin, "build", "-o", out, "./internal/smoke")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build smoke: %v\n%s", err, b)
	}
	return out
}

// TestLabSmoke boots L1, loads kvm-amd and runs a real-mode guest on L1's /dev/kvm that
// adds two numbers and writes the sum to an I/O port, in two steps of one boot.
func TestLabSmoke(t *testing.T) {
	cfg := labConfig(t)
	cfg.Payload = map[string]string{"smoke": buildSmoke(t)}
	cfg.Script = "step add ./smoke -a 40 -b 2\nstep wrap ./smoke -a 250 -b 9\nstep svm grep -c -w svm /proc/cpuinfo\ngrep -o -w npt /proc/cpuinfo | sort -u\n"

	res, err := lab.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("lab.Run: %v", err)
	}
	msg := fmt.Sprintf("lab: L1 booted to /init in %v; TestLabSmoke's lab run took %v in all", res.BootTime.Round(10e6), res.Total.Round(10e6))
	t.Log(msg)
	fmt.Println(msg)
	if res.ExitCode != 0 {
		t.Fatalf("script exit status %d, output:\n%s", res.ExitCode, res.Output)
	}
	tests := []struct {
		step string
		want string
	}{
		{"add", "out 0x10 42"},
		{"wrap", "out 0x10 3"}, // 259 mod 256: the guest adds bytes
	}
	if s, _ := res.Step("svm"); s.Output != fmt.Sprintf("%d\n", cfg.CPUs) {
		t.Errorf("L1 cpuinfo lists svm on %q CPUs, want all %d", s.Output, cfg.CPUs)
	}
	for _, tc := range tests {
		s, ok := res.Step(tc.step)
		if !ok {
			t.Errorf("no step %q in output:\n%s", tc.step, res.Output)
			continue
		}
		if s.ExitCode != 0 || !strings.Contains(s.Output, tc.want+"\n") || !strings.Contains(s.Output, "hlt\n") {
			t.Errorf("step %s: status %d, output %q, want %q then hlt", tc.step, s.ExitCode, s.Output, tc.want)
		}
	}
}

// logWriter sends L1's console to the test log, a line at a time.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// TestLabPayload copies a large file and a nested one into L1 and checks they arrive
// whole, with their permission bits, and that the script's failure status comes back.
func TestLabPayload(t *testing.T) {
	cfg := labConfig(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "disk.img")
	data := make([]byte, 48<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(dir, "tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\necho tool ran \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Payload = map[string]string{"disk.img": big, "/opt/x/tool": tool}
	cfg.Script = "step sum sha256sum disk.img\nstep tool /opt/x/tool a b\nstep fails sh -c 'echo no >&2; exit 3'\nexit 7\n"

	res, err := lab.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("lab.Run: %v", err)
	}
	t.Logf("L1 boot %v, total %v with a %d MiB payload", res.BootTime, res.Total, len(data)>>20)
	if res.ExitCode != 7 {
		t.Errorf("exit status %d, want 7", res.ExitCode)
	}
	want := map[string]struct {
		out  string
		code int
	}{
		"sum":   {fmt.Sprintf("%x  disk.img\n", sha256.Sum256(data)), 0},
		"tool":  {"tool ran a b\n", 0},
		"fails": {"no\n", 3},
	}
	steps := res.Steps()
	if len(steps) != len(want) {
		t.Errorf("%d steps, want %d: %+v", len(steps), len(want), steps)
	}
	for _, s := range steps {
		w := want[s.Name]
		if s.Output != w.out || s.ExitCode != w.code {
			t.Errorf("step %s: output %q status %d, want %q status %d", s.Name, s.Output, s.ExitCode, w.out, w.code)
		}
	}
}
