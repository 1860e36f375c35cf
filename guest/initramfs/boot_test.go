package initramfs

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/guest"
	"github.com/hullvm/hull/internal/testenv"
)

// TestBoot boots the hull kernel with the initramfs under QEMU's microvm machine
// (software emulation: this host's KVM cannot boot Linux), with two EROFS layer disks
// named by serial, and runs a process through hull-init as PID 1. QEMU here has no
// vhost-vsock, so the agent speaks the same protocol over a virtio console port
// (hull.channel=/dev/hvc0). QEMU must exit by itself once the agent ends the VM: QEMU's
// microvm has no i8042, so the test asks the kernel for a triple-fault reset (reboot=t;
// with reboot=k the kernel falls back to jumping into the firmware, which boots again),
// and -no-reboot turns the reset into an exit.
func TestBoot(t *testing.T) {
	if testenv.Short() {
		t.Skip("boots a VM under QEMU TCG (seconds); -short leaves it out")
	}
	qemu := testenv.RequireBinary(t, "qemu-system-x86_64")
	kernel := cache.Dir(envOr("HULL_CACHE", cache.DefaultDir)).Kernel()
	testenv.RequireFile(t, kernel, "the hull guest kernel")
	src := source(t)
	r, err := Build(context.Background(), Options{Dir: t.TempDir(), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	base, top := bootLayers(t)

	tests := []struct {
		name   string
		args   []string
		stdin  string
		want   guest.Exit
		stdout string
	}{
		{
			name:   "shell with stdin layers and hostname",
			args:   []string{"sh", "-c", "cat; cat /etc/which; hostname; grep -c overlay /proc/mounts; exit 7"},
			stdin:  "hello from the host\n",
			want:   guest.Exit{Status: 7},
			stdout: "hello from the host\ntop\nhullvm\n1\n",
		},
		{
			name: "missing command",
			args: []string{"nosuchcmd"},
			want: guest.Exit{Status: 127, Reason: guest.ReasonNotFound},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A unix socket path must fit in 108 bytes: not under t.TempDir.
			dir, err := os.MkdirTemp("", "hullboot")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			sock := filepath.Join(dir, "agent.sock")
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, qemu,
				"-M", "microvm,acpi=off,x-option-roms=off,rtc=off", "-accel", "tcg",
				"-m", "256", "-smp", "1", "-nodefaults", "-no-user-config", "-no-reboot",
				"-display", "none", "-monitor", "none", "-serial", "stdio",
				"-kernel", kernel, "-initrd", r.Path,
				"-append", "console=ttyS0 reboot=t panic=-1 tsc_early_khz=2000000 hull.channel=/dev/hvc0",
				"-device", "virtio-serial-device",
				"-chardev", "socket,id=agent,path="+sock+",server=on,wait=off",
				"-device", "virtconsole,chardev=agent",
				"-drive", "id=l0,file="+base+",format=raw,if=none,readonly=on",
				"-device", "virtio-blk-device,drive=l0,serial=hull-layer-0",
				"-drive", "id=l1,file="+top+",format=raw,if=none,readonly=on",
				"-device", "virtio-blk-device,drive=l1,serial=hull-layer-1",
			)
			console, err := os.Create(filepath.Join(dir, "console.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer console.Close()
			cmd.Stdout, cmd.Stderr = console, console
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if t.Failed() {
					b, _ := os.ReadFile(console.Name())
					t.Logf("console:\n%s", b)
				}
			}()
			conn := dialRetry(ctx, t, sock)
			var out, errb bytes.Buffer
			var in *strings.Reader
			stdio := guest.Stdio{Stdout: &out, Stderr: &errb}
			if tc.stdin != "" {
				in = strings.NewReader(tc.stdin)
				stdio.Stdin = in
			}
			ex, err := guest.Session(ctx, conn, guest.Run{
				Spec: &specs.Spec{Hostname: "hullvm", Process: &specs.Process{
					Args: tc.args, Env: []string{"PATH=/bin"}, Cwd: "/",
				}},
				Layers: []string{"hull-layer-0", "hull-layer-1"},
			}, stdio)
			conn.Close()
			if err != nil {
				t.Fatalf("session: %v", err)
			}
			ex.Message = ""
			if ex != tc.want || out.String() != tc.stdout {
				t.Errorf("exit %+v stdout %q stderr %q, want %+v stdout %q", ex, out.String(), errb.String(), tc.want, tc.stdout)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("QEMU did not exit cleanly after the run (the agent's reboot): %v", err)
			}
		})
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func dialRetry(ctx context.Context, t *testing.T, sock string) net.Conn {
	t.Helper()
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("QEMU's agent socket %s: %v", sock, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// bootLayers makes a busybox base layer and a top layer as EROFS images.
func bootLayers(t *testing.T) (base, top string) {
	t.Helper()
	bb := testenv.RequireBinary(t, "busybox")
	mkfs := testenv.RequireBinary(t, "mkfs.erofs")
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]map[string]string{
		"base": {"bin/busybox": string(b), "etc/which": "base\n"},
		"top":  {"etc/which": "top\n"},
	}
	imgs := map[string]string{}
	for name, fs := range files {
		dir := filepath.Join(t.TempDir(), name)
		for p, content := range fs {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if name == "base" {
			for _, a := range []string{"sh", "cat", "hostname", "grep"} {
				if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
					t.Fatal(err)
				}
			}
		}
		img := filepath.Join(t.TempDir(), name+".erofs")
		if out, err := exec.Command(mkfs, "--quiet", img, dir).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.erofs: %v %s", err, out)
		}
		imgs[name] = img
	}
	return imgs["base"], imgs["top"]
}
