package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/vmm"
	"github.com/hullvm/hull/vmm/testguest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want vmm.Config // checked: Kernel, MemoryMiB, CPUs, Disks, RNG, Vsock
		msg  string     // a substring of the error; "" when parse succeeds
	}{
		{"defaults", []string{"--kernel", "k"}, vmm.Config{Kernel: "k", MemoryMiB: 256, CPUs: 1}, ""},
		{"all", []string{"--kernel", "k", "-m", "1G", "--cpus", "2", "--disk", "a.img,ro,id=x", "--disk", "b.img", "--rng", "--vsock", "3,/tmp/v.sock"},
			vmm.Config{Kernel: "k", MemoryMiB: 1024, CPUs: 2, RNG: true,
				Disks: []vmm.Disk{{Path: "a.img", ReadOnly: true, ID: "x"}, {Path: "b.img"}},
				Vsock: &vmm.Vsock{CID: 3, UDS: "/tmp/v.sock"}}, ""},
		{"no kernel", nil, vmm.Config{}, "no kernel"},
		{"bad memory", []string{"--kernel", "k", "--memory", "lots"}, vmm.Config{}, "--memory"},
		{"bad disk", []string{"--kernel", "k", "--disk", "x,bogus"}, vmm.Config{}, "--disk"},
		{"bad vsock", []string{"--kernel", "k", "--vsock", "three"}, vmm.Config{}, "--vsock"},
		{"low vsock cid", []string{"--kernel", "k", "--vsock", "2,/tmp/v"}, vmm.Config{}, "CID"},
		{"argument", []string{"--kernel", "k", "extra"}, vmm.Config{}, "unexpected argument"},
		{"unknown flag", []string{"--kernel", "k", "--bogus"}, vmm.Config{}, "bogus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parse(tc.args, &stderr)
			if tc.msg != "" {
				if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.msg) {
					t.Fatalf("parse(%q) = %v; want an error mentioning %q", tc.args, err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q): %v", tc.args, err)
			}
			c := o.cfg
			if c.Kernel != tc.want.Kernel || c.MemoryMiB != tc.want.MemoryMiB || c.CPUs != tc.want.CPUs || c.RNG != tc.want.RNG {
				t.Errorf("parse(%q) = %+v; want %+v", tc.args, c, tc.want)
			}
			if len(c.Disks) != len(tc.want.Disks) {
				t.Fatalf("disks %+v; want %+v", c.Disks, tc.want.Disks)
			}
			for i := range c.Disks {
				if c.Disks[i] != tc.want.Disks[i] {
					t.Errorf("disk %d = %+v; want %+v", i, c.Disks[i], tc.want.Disks[i])
				}
			}
			if (c.Vsock == nil) != (tc.want.Vsock == nil) || c.Vsock != nil && *c.Vsock != *tc.want.Vsock {
				t.Errorf("vsock %+v; want %+v", c.Vsock, tc.want.Vsock)
			}
		})
	}
}

func TestPeakRSS(t *testing.T) {
	kib, err := peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	if kib <= 0 {
		t.Fatalf("peakRSS = %d KiB; want > 0", kib)
	}
}

// TestBoot builds hull-vmm and boots the test guest with it on /dev/kvm: the console,
// the exit statuses of the i8042 reset and of the debug-exit port, and the failure
// status.
func TestBoot(t *testing.T) {
	testenv.RequireKVM(t)
	g := testguest.Get(t)
	bin := filepath.Join(t.TempDir(), "hull-vmm")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hull-vmm: %v\n%s", err, out)
	}
	tests := []struct {
		name string
		args []string
		want []string // lines on stdout
		code int
		msg  string // on stderr
	}{
		{"print", []string{"--kernel", g.Print, "--memory", "64"}, []string{testguest.Hello, testguest.PassLine}, 0, ""},
		{"debug", []string{"--kernel", g.Print, "--memory", "64", "--debug"}, []string{testguest.PassLine}, 0, "peak_rss_kib="},
		{"no disk", []string{"--kernel", g.Disk, "--memory", "64"}, []string{testguest.Hello}, testguest.NoDevice.ExitCode(), ""},
		{"missing kernel", []string{"--kernel", filepath.Join(t.TempDir(), "none")}, nil, exitFailed, "open kernel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d; want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("stderr lacks %q:\n%s", tc.msg, stderr.String())
			}
		})
	}
}
