package vmm_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/vmm"
	"github.com/hullvm/hull/vmm/testguest"
)

// The end-to-end tests boot the test guest (vmm/testguest) on /dev/kvm through PVH:
// serial output, virtio-blk over virtio-mmio, the i8042 reset and the exit port, checked
// from both sides (what the guest reports, what is on the disk file afterwards). They run
// on the build machines' PVM KVM, where Linux does not boot but this guest does.

// e2eCase is one boot of the test guest and what it must leave behind.
type e2eCase struct {
	name    string
	print   bool   // the print-only guest
	cmdline string // Config.Cmdline
	disk    bool   // attach a disk holding testguest.Sector0
	ro      bool   // attach it read-only
	rng     bool   // attach a virtio-rng device too: a second virtio-mmio slot
	want    []string
	status  testguest.Status
	sector1 []byte // sector 1 of the disk file after the run
}

var e2eCases = []e2eCase{
	{
		name: "print", print: true,
		want:   []string{testguest.Hello, testguest.PassLine},
		status: testguest.Pass,
	},
	{
		name: "disk", disk: true,
		want: []string{testguest.Hello, "virtio_mmio.device=4K@0xd0000000:", "testguest: virtio-blk at 0xd0000000", `testguest: id="hull-test"`, "ro=0", testguest.ReadOK, testguest.PatternOK,
			testguest.WriteOK, testguest.PassLine},
		status: testguest.Pass, sector1: testguest.Sector1(),
	},
	{
		name: "disk-and-rng", disk: true, rng: true,
		want: []string{testguest.Hello, testguest.ReadOK, testguest.PatternOK, testguest.WriteOK,
			testguest.PassLine},
		status: testguest.Pass, sector1: testguest.Sector1(),
	},
	{
		name: "read-only", disk: true, ro: true,
		want:   []string{testguest.Hello, "ro=1", testguest.PatternOK, testguest.ROPrefix, testguest.PassLine},
		status: testguest.Pass, sector1: make([]byte, testguest.SectorSize),
	},
	{
		name: "no-disk", cmdline: "console=ttyS0 hull-e2e",
		want: []string{testguest.Hello, `testguest: cmdline="console=ttyS0 hull-e2e`, "testguest: no virtio-blk device",
			"testguest: FAIL status=2"},
		status: testguest.NoDevice,
	},
}

// diskFor writes the case's disk image into a temporary folder, or returns "".
func diskFor(t *testing.T, c e2eCase) string {
	t.Helper()
	if !c.disk {
		return ""
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := testguest.WriteDisk(p, 1<<20); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkRun asserts the console lines and the disk after a run.
func checkRun(t *testing.T, c e2eCase, out, disk string) {
	t.Helper()
	for _, w := range c.want {
		if !strings.Contains(out, w) {
			t.Errorf("console lacks %q:\n%s", w, out)
		}
	}
	if c.sector1 == nil {
		return
	}
	got, err := testguest.ReadSector(disk, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, c.sector1) {
		t.Errorf("sector 1 of the disk file starts %q after the run, want %q", got[:8], c.sector1[:8])
	}
	got, err = testguest.ReadSector(disk, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, testguest.Sector0()) {
		t.Errorf("sector 0 changed: starts %q", got[:8])
	}
}

// wantExit is how a machine running the case must end: a pass resets through the
// i8042, a failure writes its status to the exit port.
func wantExit(s testguest.Status) vmm.Exit {
	if s == testguest.Pass {
		return vmm.Exit{Reason: vmm.Reset, Code: 0}
	}
	return vmm.Exit{Reason: vmm.DebugExit, Code: s.ExitCode(), Value: byte(s)}
}

func TestGuestE2E(t *testing.T) {
	testenv.RequireKVM(t)
	g := testguest.Get(t)
	for _, c := range e2eCases {
		t.Run(c.name, func(t *testing.T) {
			kernel := g.Disk
			if c.print {
				kernel = g.Print
			}
			disk := diskFor(t, c)
			var cons vmm.SyncBuffer
			cfg := vmm.Config{Kernel: kernel, Cmdline: c.cmdline, MemoryMiB: 64, RNG: c.rng, Console: &cons}
			if disk != "" {
				cfg.Disks = []vmm.Disk{{Path: disk, ReadOnly: c.ro, ID: "hull-test"}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			m, err := vmm.New(ctx, cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			exit, err := m.Run(ctx)
			if err != nil {
				t.Fatalf("Run: %v\nconsole:\n%s", err, cons.String())
			}
			if want := wantExit(c.status); exit != want {
				t.Errorf("exit %+v, want %+v\nconsole:\n%s", exit, want, cons.String())
			}
			checkRun(t, c, strings.ReplaceAll(cons.String(), "\r\n", "\n"), disk)
		})
	}
}

// TestGuestCLI boots the same guest through `hull vm run`, the built binary, and checks
// its exit status: 0 for a pass (i8042 reset), (v<<1)|1 for a failure's exit port value.
func TestGuestCLI(t *testing.T) {
	testenv.RequireKVM(t)
	g := testguest.Get(t)
	hull := filepath.Join(t.TempDir(), "hull")
	if out, err := exec.Command("go", "build", "-o", hull, "github.com/hullvm/hull/cmd/hull").CombinedOutput(); err != nil {
		t.Fatalf("build hull: %v\n%s", err, out)
	}
	for _, c := range e2eCases {
		t.Run(c.name, func(t *testing.T) {
			kernel := g.Disk
			if c.print {
				kernel = g.Print
			}
			args := []string{"vm", "run", "--kernel", kernel, "--memory", "64"}
			if c.cmdline != "" {
				args = append(args, "--cmdline", c.cmdline)
			}
			if c.rng {
				args = append(args, "--rng")
			}
			disk := diskFor(t, c)
			if disk != "" {
				spec := disk + ",id=hull-test"
				if c.ro {
					spec += ",ro"
				}
				args = append(args, "--disk", spec)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, hull, args...)
			cmd.Stdout = &stdout
			cmd.Stderr = &stderr
			err := cmd.Run()
			if _, ok := err.(*exec.ExitError); err != nil && !ok {
				t.Fatalf("hull %s: %v", strings.Join(args, " "), err)
			}
			out := strings.ReplaceAll(stdout.String(), "\r\n", "\n")
			if code, want := cmd.ProcessState.ExitCode(), wantExit(c.status).Code; code != want {
				t.Errorf("hull %s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, stderr.Bytes())
			}
			checkRun(t, c, out, disk)
		})
	}
}
