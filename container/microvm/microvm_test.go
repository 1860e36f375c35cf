package microvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/guest"
	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/vmm"
)

func TestSplitDisks(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ids     []string
		layers  []string
		scratch string
		bad     bool
	}{
		{"none", nil, nil, "", false},
		{"base", []string{"hull-layer-0"}, []string{"hull-layer-0"}, "", false},
		{"any order", []string{"hull-layer-1", "data", "hull-scratch", "hull-layer-0"}, []string{"hull-layer-0", "hull-layer-1"}, "hull-scratch", false},
		{"gap", []string{"hull-layer-0", "hull-layer-2"}, nil, "", true},
		{"no base", []string{"hull-layer-1"}, nil, "", true},
		{"other disks only", []string{"data", ""}, nil, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var disks []vmm.Disk
			for _, id := range tt.ids {
				disks = append(disks, vmm.Disk{Path: "x", ID: id})
			}
			layers, scratch, err := SplitDisks(disks)
			if (err != nil) != tt.bad {
				t.Fatalf("SplitDisks(%v) error %v, want error %v", tt.ids, err, tt.bad)
			}
			if fmt.Sprint(layers) != fmt.Sprint(tt.layers) || scratch != tt.scratch {
				t.Errorf("SplitDisks(%v) = %v, %q; want %v, %q", tt.ids, layers, scratch, tt.layers, tt.scratch)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSizing(t *testing.T) {
	for _, tt := range []struct {
		name      string
		res       *specs.LinuxResources
		cpus, mib int
	}{
		{"defaults", nil, 1, DefaultMemoryMiB},
		{"1.5 cpus round up", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(150000)), Period: ptr(uint64(100000))}}, 2, DefaultMemoryMiB},
		{"2 cpus", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(200000)), Period: ptr(uint64(100000))}}, 2, DefaultMemoryMiB},
		{"0.1 cpu", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(10000)), Period: ptr(uint64(100000))}}, 1, DefaultMemoryMiB},
		{"memory plus headroom", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(32 << 20))}}, 1, 32 + HeadroomMiB},
		{"memory rounds up", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(32<<20 + 1))}}, 1, 33 + HeadroomMiB},
		{"memory capped", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 50))}}, 1, vmm.MaxMemoryMiB},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cpus, mib := sizing(&specs.Spec{Linux: &specs.Linux{Resources: tt.res}})
			if cpus != tt.cpus || mib != tt.mib {
				t.Errorf("sizing = %d CPUs, %d MiB; want %d, %d", cpus, mib, tt.cpus, tt.mib)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want syscall.Signal
		bad  bool
	}{
		{"signal 15\n", 15, false},
		{"signal 9", 9, false},
		{"signal 64\n", 64, false},
		{"signal 0\n", 0, true},
		{"signal 65\n", 0, true},
		{"signal -1\n", 0, true},
		{"kill 9\n", 0, true},
		{"signal x\n", 0, true},
		{"", 0, true},
	} {
		got, err := parseSignal(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"signal 15\n", "signal 99999999999999999999\n", "signal \n", "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSignal(s)
		if err == nil && (n < 1 || n > 64) {
			t.Fatalf("parseSignal(%q) = %d without error", s, n)
		}
	})
}

func TestControl(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	got := make(chan syscall.Signal, 4)
	c, err := listenControl(path, func(s syscall.Signal) error {
		if s == unix.SIGUSR2 {
			return fmt.Errorf("refused")
		}
		got <- s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := sendSignal(ctx, path, unix.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM: %v", err)
	}
	if s := <-got; s != unix.SIGTERM {
		t.Errorf("forwarded %v, want SIGTERM", s)
	}
	if err := sendSignal(ctx, path, unix.SIGUSR2); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("send SIGUSR2 = %v, want the server's refusal", err)
	}
	c.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	if err := sendSignal(ctx, path, unix.SIGTERM); err == nil {
		t.Error("send after Close succeeded")
	}
}

func TestParseLs(t *testing.T) {
	for _, tt := range []struct {
		name string
		out  string
		want []string
		bad  bool
	}{
		{"mkfs", "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/11/040700/0/0/lost+found//\n/12/100640/0/0/a/3/\n/13/120777/0/0/l/1/\n", []string{"lost+found", "a", "l"}, false},
		{"empty", "", nil, false},
		{"quote", "/12/100640/0/0/a\"b/3/\n", nil, true},
		{"backslash", "/12/100640/0/0/a\\b/3/\n", nil, true},
		{"line break", "/12/100640/0/0/a\n/b/3/\n", nil, true},
		{"spaces are fine", "/12/100640/0/0/a b/3/\n", []string{"a b"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLs(tt.out)
			if (err != nil) != tt.bad {
				t.Fatalf("parseLs error %v, want error %v", err, tt.bad)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("parseLs = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseLs(f *testing.F) {
	f.Add("/2/040755/0/0/.//\n/12/100640/0/0/a/3/\n")
	f.Add("/12/100640/0/0/a\"\nrdump / /etc/3/\n")
	f.Fuzz(func(t *testing.T, out string) {
		names, err := parseLs(out)
		if err != nil {
			return
		}
		for _, n := range names {
			if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "\"\\\n\r\x00/") {
				t.Fatalf("parseLs(%q) gave name %q", out, n)
			}
		}
	})
}

func tools(t *testing.T) Tools {
	t.Helper()
	return Tools{Mkfs: testenv.RequireBinary(t, "mkfs.ext4"), Debugfs: testenv.RequireBinary(t, "debugfs")}
}

// TestVolumeRoundTrip makes a volume disk from a folder, changes it as a guest would
// (debugfs -w stands in for the guest's writes), and copies it back.
func TestVolumeRoundTrip(t *testing.T) {
	tl := tools(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for f, body := range map[string]string{"keep": "kept\n", "stale": "old\n", "sub/deep": "deep\n"} {
		p := filepath.Join(src, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "vol.img")
	n, err := dirSize(src)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := tl.MakeExt4(ctx, img, volumeSize(n), src); err != nil {
		t.Fatal(err)
	}
	newFile := filepath.Join(dir, "new")
	os.WriteFile(newFile, []byte("from the guest\n"), 0o600)
	x := exec.Command(tl.Debugfs, "-w", "-f", "-", img)
	x.Stdin = strings.NewReader("rm /stale\nwrite " + newFile + " new\nmkdir made\n")
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("debugfs -w: %v\n%s", err, out)
	}
	if err := tl.CopyOut(ctx, img, src); err != nil {
		t.Fatalf("CopyOut: %v", err)
	}
	for f, want := range map[string]string{"keep": "kept\n", "sub/deep": "deep\n", "new": "from the guest\n"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil || string(b) != want {
			t.Errorf("%s after copy-back = %q, %v; want %q", f, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(src, "keep")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("keep's mode after copy-back = %v, %v; want 0640", fi.Mode(), err)
	}
	for _, f := range []string{"stale", "lost+found"} {
		if _, err := os.Lstat(filepath.Join(src, f)); !os.IsNotExist(err) {
			t.Errorf("%s after copy-back: %v, want it gone", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(src, "made")); err != nil || !fi.IsDir() {
		t.Errorf("made after copy-back: %v, want a folder", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Kernel: "k", Socket: "/run/v"}
	for _, tt := range []struct {
		name string
		mod  func(*Config)
		bad  bool
	}{
		{"ok", func(*Config) {}, false},
		{"no socket", func(c *Config) { c.Socket = "" }, true},
		{"long socket", func(c *Config) { c.Socket = "/" + strings.Repeat("s", MaxSocketPath) }, true},
		{"no kernel", func(c *Config) { c.Kernel = "" }, true},
		{"bad serial", func(c *Config) { c.Disks = []vmm.Disk{{Path: "d", ID: strings.Repeat("x", 21)}} }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			if err := c.Validate(); (err != nil) != tt.bad {
				t.Errorf("Validate() = %v, want error %v", err, tt.bad)
			}
		})
	}
}

// TestSentinel checks the thread that stands for a VM: alive with its own start time
// until released, then gone.
func TestSentinel(t *testing.T) {
	release := make(chan struct{})
	tid, gone := sentinel(release)
	if tid == unix.Getpid() || threadGroup(tid) != unix.Getpid() {
		t.Fatalf("sentinel %d: want a thread of this process (%d), not its main thread", tid, unix.Getpid())
	}
	start := startTime(t, tid)
	if !sameThread(tid, start) {
		t.Fatalf("sameThread(%d, %d) = false while it runs", tid, start)
	}
	close(release)
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("sentinel thread still there 5 s after its release")
	}
	if sameThread(tid, start) {
		t.Errorf("sentinel thread %d alive after release", tid)
	}
}

func startTime(t *testing.T, tid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var n uint64
	fmt.Sscan(f[19], &n)
	return n
}

// TestRuntimeDisks checks Prepare's scratch disk, the volume rewrite of the spec and
// Delete, without booting (the host's KVM may not boot Linux: the lab test does).
func TestRuntimeDisks(t *testing.T) {
	testenv.RequireRoot(t)
	r := &Runtime{Tools: tools(t), ScratchSize: 64 << 20}
	dir := t.TempDir()
	c := &container.Container{Dir: filepath.Join(dir, "c"), State: container.State{ID: strings.Repeat("a", 64), Name: "t",
		Disks: []string{"/layers/base.erofs", "/layers/top.erofs"}}}
	os.Mkdir(c.Dir, 0o700)
	vol := filepath.Join(dir, "vol")
	os.Mkdir(vol, 0o755)
	ctx := context.Background()
	if _, err := r.Prepare(ctx, c); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(c.Dir, scratchFile)); err != nil || fi.Size() != 64<<20 {
		t.Fatalf("scratch disk: %v", err)
	}
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n"), 0o644)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, guest.MaxFileSize+1), 0o644)
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind", "rprivate"}},
		{Destination: "/ro", Type: "bind", Source: vol, Options: []string{"rbind", "ro"}},
		{Destination: "/etc/hosts", Type: "bind", Source: hosts, Options: []string{"rbind", "rprivate"}},
	}}
	disks, vols, files, err := r.disks(ctx, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != "/etc/hosts" || string(files[0].Data) != "127.0.0.1\tlocalhost\n" || files[0].ReadOnly {
		t.Errorf("single-file volumes %+v, want /etc/hosts carried inline", files)
	}
	if len(spec.Mounts) != 3 {
		t.Errorf("mounts %+v: the file's bind mount should be gone", spec.Mounts)
	}
	tooBig := &specs.Spec{Mounts: []specs.Mount{{Destination: "/big", Type: "bind", Source: big, Options: []string{"rbind"}}}}
	if _, _, _, err := r.disks(ctx, c, tooBig); err == nil || !strings.Contains(err.Error(), "folder") {
		t.Errorf("a file over %d bytes = %v, want an error saying to mount its folder", guest.MaxFileSize, err)
	}
	var ids []string
	for _, d := range disks {
		ids = append(ids, fmt.Sprintf("%s:%v", d.ID, d.ReadOnly))
	}
	if want := "[hull-layer-0:true hull-layer-1:true hull-scratch:false hull-vol-0:false hull-vol-1:true]"; fmt.Sprint(ids) != want {
		t.Errorf("disks %v, want %s", ids, want)
	}
	if len(vols) != 2 || vols[0].ro || !vols[1].ro {
		t.Errorf("volumes %+v", vols)
	}
	if m := spec.Mounts[1]; m.Source != "serial:hull-vol-0" || m.Type != "ext4" || m.Destination != "/data" {
		t.Errorf("volume mount rewritten to %+v", m)
	}
	if m := spec.Mounts[2]; m.Source != "serial:hull-vol-1" || !hasOption(m.Options, "ro") {
		t.Errorf("read-only volume mount rewritten to %+v", m)
	}
	if _, err := r.Exec(ctx, c, &specs.Process{Args: []string{"true"}}, container.IO{}); !errors.Is(err, container.ErrNotRunning) {
		t.Errorf("Exec without a VM = %v, want ErrNotRunning", err)
	}
	for range 2 { // idempotent
		if err := r.Delete(ctx, c); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(c.Dir, "*.img"))
	if len(left) > 0 {
		t.Errorf("disks left after Delete: %v", left)
	}
}

func TestConsoleTail(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "console.log")
	if got := consoleTail(log); got != "" {
		t.Errorf("tail of a missing log = %q, want nothing", got)
	}
	os.WriteFile(log, nil, 0o600)
	if got := consoleTail(log); !strings.Contains(got, "empty") {
		t.Errorf("tail of an empty log = %q", got)
	}
	// A hostile guest: a long log, escape sequences, NULs and invalid UTF-8.
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "line %d \x1b[31mred\x1b[0m\x00\xff\n", i)
	}
	b.WriteString("Kernel panic - not syncing: VFS: Unable to mount root fs\n")
	os.WriteFile(log, []byte(b.String()), 0o600)
	got := consoleTail(log)
	if !strings.Contains(got, "Kernel panic") || !strings.Contains(got, "line 1999") {
		t.Errorf("tail lacks the last lines: %q", got)
	}
	if strings.Contains(got, "line 1985 ") || strings.ContainsAny(got, "\x1b\x00\ufffd") || strings.Count(got, "\n") > consoleTailLines {
		t.Errorf("tail is not the clean last %d lines: %q", consoleTailLines, got)
	}
}
