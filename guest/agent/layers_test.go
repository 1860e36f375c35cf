package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullvm/hull/guest"
	"github.com/hullvm/hull/internal/testenv"
)

// disk is a test disk image attached to a loop device under a serial.
type disk struct {
	serial, image string
	readOnly      bool
}

// attach loop-mounts each disk's image and returns a fake sysfs naming the loop
// devices by the disks' serials, as the virtio-blk driver does in the guest.
func attach(t *testing.T, disks ...disk) string {
	t.Helper()
	testenv.RequireLoop(t)
	losetup := testenv.RequireBinary(t, "losetup")
	sys := t.TempDir()
	for _, d := range disks {
		args := []string{"-f", "--show"}
		if d.readOnly {
			args = append(args, "-r")
		}
		out, err := exec.Command(losetup, append(args, d.image)...).Output()
		if err != nil {
			t.Fatalf("losetup %s: %v", d.image, err)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() {
			if out, err := exec.Command(losetup, "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v %s", dev, err, out)
			}
		})
		write(t, filepath.Join(sys, "block", filepath.Base(dev), "serial"), d.serial, 0o444)
	}
	return sys
}

func mkErofs(t *testing.T, dir string) string {
	t.Helper()
	mkfs := testenv.RequireBinary(t, "mkfs.erofs")
	img := filepath.Join(t.TempDir(), "layer.erofs")
	if out, err := exec.Command(mkfs, "--quiet", img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v %s", err, out)
	}
	return img
}

// mkExt4 makes a 32 MiB ext4 image, filled from dir when dir is not empty.
func mkExt4(t *testing.T, dir string) string {
	t.Helper()
	mkfs := testenv.RequireBinary(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "disk.ext4")
	args := []string{"-q", "-F"}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	if out, err := exec.Command(mkfs, append(args, img, "32M")...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	return img
}

// readBack runs cat in a second agent over the same disks, which checks that what the
// first agent wrote reached the disk.
func readBack(t *testing.T, sys string, r guest.Run, p string) string {
	t.Helper()
	c := startAgent(t, agentConfig{Sys: sys})
	r.Spec = spec("cat", p)
	res := run(t, c, r, nil, nil)
	if res.exit.Status != 0 {
		t.Fatalf("cat %s in a second run: %+v %s", p, res.exit, res.stderr)
	}
	return res.stdout
}

// layers returns a base layer (busybox) and a top layer that overrides one file.
func layers(t *testing.T) (base, top string) {
	t.Helper()
	base = busyboxRoot(t, t.TempDir())
	write(t, filepath.Join(base, "etc/which"), "base\n", 0o644)
	write(t, filepath.Join(base, "etc/only-base"), "base only\n", 0o644)
	top = t.TempDir()
	write(t, filepath.Join(top, "etc/which"), "top\n", 0o644)
	return base, top
}

func TestLayers(t *testing.T) {
	base, top := layers(t)
	erofsBase, erofsTop := mkErofs(t, base), mkErofs(t, top)
	script := "cat /etc/which /etc/only-base; echo new > /etc/which; cat /etc/which; echo kept > /kept"
	want := "top\nbase only\nnew\n"
	tests := []struct {
		name    string
		disks   []disk
		run     guest.Run
		status  int
		stdout  string
		message string
		persist bool     // a second run over the same disks sees /kept
		args    []string // instead of the script
	}{
		{
			name:   "erofs layers and a tmpfs upper",
			disks:  []disk{{"hull-layer-0", erofsBase, true}, {"hull-layer-1", erofsTop, true}},
			run:    guest.Run{Layers: []string{"hull-layer-0", "hull-layer-1"}},
			stdout: want,
		},
		{
			name:   "ext4 base layer",
			disks:  []disk{{"hull-layer-0", mkExt4(t, base), true}, {"hull-layer-1", erofsTop, true}},
			run:    guest.Run{Layers: []string{"hull-layer-0", "hull-layer-1"}},
			stdout: want,
		},
		{
			name:    "ext4 scratch disk",
			disks:   []disk{{"hull-layer-0", erofsBase, true}, {"hull-layer-1", erofsTop, true}, {"hull-scratch", mkExt4(t, ""), false}},
			run:     guest.Run{Layers: []string{"hull-layer-0", "hull-layer-1"}, Scratch: "hull-scratch"},
			stdout:  want,
			persist: true,
		},
		{
			name:  "read-only root",
			disks: []disk{{"hull-layer-0", erofsBase, true}},
			run: guest.Run{Layers: []string{"hull-layer-0"}, Spec: &specs.Spec{
				Root:  &specs.Root{Readonly: true},
				Linux: &specs.Linux{Sysctl: map[string]string{"kernel.domainname": "hull.test"}},
			}},
			args:   []string{"sh", "-c", "touch /new 2>/dev/null || echo refused; cat /proc/sys/kernel/domainname"},
			stdout: "refused\nhull.test\n",
		},
		{
			name:    "missing layer disk",
			disks:   []disk{{"hull-layer-0", erofsBase, true}},
			run:     guest.Run{Layers: []string{"hull-layer-0", "hull-layer-1"}},
			status:  125,
			message: `no disk with serial "hull-layer-1"`,
		},
		{
			name:    "layer that is no filesystem",
			disks:   []disk{{"hull-layer-0", mkGarbage(t), true}},
			run:     guest.Run{Layers: []string{"hull-layer-0"}},
			status:  125,
			message: "as erofs",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sys := attach(t, tc.disks...)
			c := startAgent(t, agentConfig{Sys: sys, Base: "/nonexistent"})
			s := spec("sh", "-c", script)
			if tc.args != nil {
				s.Process.Args = tc.args
			}
			if tc.run.Spec != nil {
				s.Root, s.Linux = tc.run.Spec.Root, tc.run.Spec.Linux
			}
			tc.run.Spec = s
			r := run(t, c, tc.run, nil, nil)
			if r.exit.Status != tc.status || r.stdout != tc.stdout || !strings.Contains(r.exit.Message, tc.message) {
				t.Errorf("got %+v stdout %q, want status %d stdout %q message containing %q", r.exit, r.stdout, tc.status, tc.stdout, tc.message)
			}
			if !tc.persist {
				return
			}
			c.Wait()
			if got := readBack(t, sys, tc.run, "/kept"); got != "kept\n" {
				t.Errorf("second run reads /kept = %q, want %q", got, "kept\n")
			}
		})
	}
}

func mkGarbage(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "garbage.img")
	write(t, p, strings.Repeat("not a filesystem ", 1<<16), 0o644)
	return p
}

func TestSpecMounts(t *testing.T) {
	base, _ := layers(t)
	shared := t.TempDir()
	write(t, filepath.Join(shared, "greeting"), "hi from the host\n", 0o644)
	vol := mkExt4(t, "")
	sys := attach(t, disk{"hull-layer-0", mkErofs(t, base), true}, disk{"hull-vol-0", vol, false})
	s := spec("sh", "-c", strings.Join([]string{
		"echo discard > /dev/null && echo devnull-ok",
		"ls /dev/zero",
		"readlink /dev/fd",
		"grep -c ' /mnt/t tmpfs ' /proc/mounts",
		"cat /mnt/ro/greeting",
		"echo x > /mnt/ro/new 2>/dev/null || echo ro-refused",
		"echo persisted > /data/file && echo vol-ok",
	}, "; "))
	s.Mounts = []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/mnt/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
		{Destination: "/mnt/ro", Type: "bind", Source: shared, Options: []string{"rbind", "ro"}},
		{Destination: "/data", Source: "serial:hull-vol-0", Type: "ext4"},
	}
	c := startAgent(t, agentConfig{Sys: sys})
	r := run(t, c, guest.Run{Spec: s, Layers: []string{"hull-layer-0"}}, nil, nil)
	want := "devnull-ok\n/dev/zero\n/proc/self/fd\n1\nhi from the host\nro-refused\nvol-ok\n"
	if r.exit.Status != 0 || r.stdout != want {
		t.Errorf("exit %+v\nstdout %q\nwant   %q\nstderr %q", r.exit, r.stdout, want, r.stderr)
	}
	c.Wait()
	s.Process.Args = []string{"cat", "/data/file"}
	c = startAgent(t, agentConfig{Sys: sys})
	r = run(t, c, guest.Run{Spec: s, Layers: []string{"hull-layer-0"}}, nil, nil)
	if r.stdout != "persisted\n" {
		t.Errorf("second run reads the volume's /file = %q (%+v), want %q", r.stdout, r.exit, "persisted\n")
	}
	if _, err := os.Stat(filepath.Join(shared, "new")); err == nil {
		t.Errorf("a read-only bind mount let the process write to the host")
	}
}

func TestDebugTools(t *testing.T) {
	tools := t.TempDir()
	write(t, filepath.Join(tools, "hello-tool"), "#!/bin/sh\necho tool ran\n", 0o755)
	c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir()), Tools: tools})
	r := run(t, c, guest.Run{Spec: spec("hello-tool"), Debug: true}, nil, nil)
	if r.exit.Status != 0 || r.stdout != "tool ran\n" {
		t.Errorf("exit %+v stdout %q, want the debug tool's output", r.exit, r.stdout)
	}
}
