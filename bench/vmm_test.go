package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hullvm/hull/bench"
	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/vmm/testguest"
)

// The VMM benchmarks boot the print-only test guest (vmm/testguest) in a fresh VMM
// process per iteration, hull and its peers interleaved in the same loop, and report
// medians and ratios:
//
//	go test -run '^$' -bench VMM -benchtime 20x ./bench/
//
// On the build machines /dev/kvm is PVM: the guest runs under instruction emulation, so
// the figures are the VMM's own start-up and footprint, not guest speed.

// vmmPeer is one VMM that boots the print-only guest.
type vmmPeer struct {
	name string
	cmd  func(ctx context.Context, guest string) *exec.Cmd
	// kill: the process does not end by itself when the guest is done (gokvm keeps
	// running after an unknown port exit); it is killed after the guest's last line.
	kill bool
}

// vmmRun is one boot: the wall time from starting the process to the guest's first
// line, the whole run until the process ended, and, when measured, the peak RSS of the
// process.
type vmmRun struct {
	first, total time.Duration
	maxRSS       int64 // bytes
}

// timeBin is GNU time. A peer runs under it because the peak RSS that wait4 reports for
// a child of a Go program is wrong: Go starts children with clone(CLONE_VM|CLONE_VFORK)
// and Linux's exec folds the old mm's high-water mark, the parent's, into the child's
// maxrss. GNU time forks a copy of its own small mm instead.
const timeBin = "/usr/bin/time"

// bootOnce starts the peer on the guest and reads its console until the guest's last
// line. With rss, the peer runs under GNU time for its peak RSS; without, it is
// started directly, so that its times do not include GNU time's own fork and exec
// (about a millisecond here, a tenth of hull's start).
func bootOnce(ctx context.Context, p vmmPeer, guest string, rss bool) (vmmRun, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := p.cmd(ctx, guest)
	var rssFile string
	if rss {
		f, err := os.CreateTemp("", "hull-bench-rss-")
		if err != nil {
			return vmmRun{}, err
		}
		f.Close()
		defer os.Remove(f.Name())
		rssFile = f.Name()
		cmd = exec.CommandContext(ctx, timeBin, append([]string{"-f", "%M", "-o", rssFile}, cmd.Args...)...)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return vmmRun{}, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var r vmmRun
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return vmmRun{}, fmt.Errorf("%s: %w", p.name, err)
	}
	var seen strings.Builder
	sc := bufio.NewScanner(out)
	done := false
	for !done && sc.Scan() {
		line := sc.Text()
		seen.WriteString(line + "\n")
		switch {
		case strings.Contains(line, testguest.Hello):
			r.first = time.Since(t0)
		case strings.Contains(line, testguest.PassLine):
			done = true
		}
	}
	if done && p.kill {
		if rss {
			killChildren(cmd.Process.Pid)
		} else {
			cmd.Process.Kill()
		}
	}
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	r.total = time.Since(t0)
	if !done || r.first == 0 {
		return vmmRun{}, fmt.Errorf("%s: guest did not pass (%v); console:\n%s\nstderr:\n%s", p.name, werr, seen.String(), stderr.Bytes())
	}
	if !rss {
		return r, nil
	}
	b, err := os.ReadFile(rssFile)
	if err != nil {
		return vmmRun{}, err
	}
	// The last line is %M; a line before it may say the command was killed.
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return vmmRun{}, fmt.Errorf("%s: GNU time wrote no peak RSS", p.name)
	}
	kib, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		return vmmRun{}, fmt.Errorf("%s: GNU time output %q: %w", p.name, b, err)
	}
	r.maxRSS = kib << 10
	return r, nil
}

// killChildren kills the children of pid (the peer under GNU time), so that time still
// reports their usage.
func killChildren(pid int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, c := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(c); err == nil {
			syscall.Kill(n, syscall.SIGKILL)
		}
	}
}

// guestTouched is an upper bound of the guest memory the print-only guest touches: its
// loaded segments (code, data, bss, stack) and a page each for the boot structures the
// VMM writes (start info, command line, memory map, page tables). A VMM's overhead is
// its peak RSS minus this.
func guestTouched(b *testing.B, guest string) int64 {
	b.Helper()
	f, err := elf.Open(guest)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			n += int64(p.Memsz+4095) &^ 4095
		}
	}
	return n + 4*4096
}

// buildGo builds a main package of hull into dir as `make build` does (static, no cgo:
// with cgo, a binary that links package net is dynamically linked to the C library,
// which costs a VMM about 1.7 MiB of resident memory and start-up time).
func buildGo(b *testing.B, dir, name, pkg string) string {
	b.Helper()
	bin := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// buildGokvm builds gokvm from the module cache, the baseline Go VMM; it returns why
// it cannot when it cannot (a missing peer is reported, not a failure).
func buildGokvm(dir string) (string, error) {
	bin := filepath.Join(dir, "gokvm")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/bobuhiro11/gokvm").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build github.com/bobuhiro11/gokvm: %v: %s", err, out)
	}
	return bin, nil
}

// guestMiB is the guest RAM every peer is given.
const guestMiB = 64

// vmmPeers are hull (`hull vm run`), hull-vmm (cmd/hull-vmm: package vmm in a binary
// of its own, the floor under the CLI), QEMU microvm and, when it builds, gokvm.
func vmmPeers(b *testing.B) []vmmPeer {
	b.Helper()
	testenv.RequireKVM(b)
	testenv.RequireBinary(b, timeBin)
	qemu := testenv.RequireBinary(b, "qemu-system-x86_64")
	dir := b.TempDir()
	hull := buildGo(b, dir, "hull", "github.com/hullvm/hull/cmd/hull")
	vmmBin := buildGo(b, dir, "hull-vmm", "github.com/hullvm/hull/cmd/hull-vmm")
	peers := []vmmPeer{
		{name: "hull", cmd: func(ctx context.Context, g string) *exec.Cmd {
			return exec.CommandContext(ctx, hull, "vm", "run", "--kernel", g, "--memory", fmt.Sprint(guestMiB))
		}},
		{name: "hull-vmm", cmd: func(ctx context.Context, g string) *exec.Cmd {
			return exec.CommandContext(ctx, vmmBin, "--kernel", g, "--memory", fmt.Sprint(guestMiB))
		}},
		{name: "qemu", cmd: func(ctx context.Context, g string) *exec.Cmd {
			return exec.CommandContext(ctx, qemu, append(testguest.QEMUArgs(g, ""), "-m", fmt.Sprintf("%dM", guestMiB))...)
		}},
	}
	gokvm, err := buildGokvm(dir)
	if err != nil {
		b.Logf("peer gokvm missing: %v", err)
		return peers
	}
	return append(peers, vmmPeer{name: "gokvm", kill: true, cmd: func(ctx context.Context, g string) *exec.Cmd {
		return exec.CommandContext(ctx, gokvm, "boot", "-k", g, "-m", fmt.Sprintf("%dM", guestMiB))
	}})
}

// interleave boots the guest b.N times on every peer, peers in turn, and returns each
// peer's runs. Each round starts one peer further on, so that no peer always follows
// the same one: a VMM's exit leaves work behind in the host kernel (the VM's teardown,
// freeing its memory) that slows whichever process starts next.
func interleave(b *testing.B, peers []vmmPeer, guest string, rss bool) map[string][]vmmRun {
	b.Helper()
	runs := map[string][]vmmRun{}
	// One unmeasured boot each warms the page cache and reports a broken peer early.
	for _, p := range peers {
		if _, err := bootOnce(context.Background(), p, guest, rss); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range peers {
			p := peers[(i+k)%len(peers)]
			r, err := bootOnce(context.Background(), p, guest, rss)
			if err != nil {
				b.Fatal(err)
			}
			runs[p.name] = append(runs[p.name], r)
		}
	}
	b.StopTimer()
	return runs
}

func median(runs []vmmRun, f func(vmmRun) float64) float64 {
	vs := make([]float64, len(runs))
	for i, r := range runs {
		vs[i] = f(r)
	}
	return bench.Median(vs)
}

// BenchmarkVMMStart: process start to the guest's first serial line, and to the VMM's
// exit, per peer (medians, ms), and each peer's time over hull's and over hull-vmm's
// (the target: QEMU 10 times slower).
func BenchmarkVMMStart(b *testing.B) {
	peers := vmmPeers(b)
	guest := testguest.Get(b).Print
	runs := interleave(b, peers, guest, false)
	first := func(r vmmRun) float64 { return float64(r.first) / float64(time.Millisecond) }
	total := func(r vmmRun) float64 { return float64(r.total) / float64(time.Millisecond) }
	base := median(runs["hull"], first)
	vmm := median(runs["hull-vmm"], first)
	for _, p := range peers {
		m := median(runs[p.name], first)
		b.ReportMetric(m, p.name+"-first-ms")
		b.ReportMetric(median(runs[p.name], total), p.name+"-exit-ms")
		if p.name != "hull" {
			b.ReportMetric(m/base, p.name+"/hull")
		}
		if p.name == "qemu" || p.name == "gokvm" {
			// The VMM process against the VMM process (hull-vmm is what hull's
			// front ends would start, as Firecracker's are started).
			b.ReportMetric(m/vmm, p.name+"/hull-vmm")
		}
	}
	b.ReportMetric(0, "ns/op") // the loop's time mixes peers: the medians above are the figures
}

// BenchmarkVMMMemory: each VMM's peak RSS minus the guest memory the guest touched
// (medians, MiB), and each peer's overhead over hull's (the target: hull <= 5
// MiB; QEMU about 40).
func BenchmarkVMMMemory(b *testing.B) {
	peers := vmmPeers(b)
	guest := testguest.Get(b).Print
	touched := guestTouched(b, guest)
	runs := interleave(b, peers, guest, true)
	over := func(r vmmRun) float64 { return float64(r.maxRSS-touched) / (1 << 20) }
	base := median(runs["hull"], over)
	for _, p := range peers {
		m := median(runs[p.name], over)
		b.ReportMetric(m, p.name+"-MiB")
		if p.name != "hull" {
			b.ReportMetric(m/base, p.name+"/hull")
		}
	}
	b.ReportMetric(0, "ns/op")
}
