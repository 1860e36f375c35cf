package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/internal/testenv"
)

// entry is one record of an archive, read back with u-root's independent newc reader.
type entry struct {
	mode           uint64
	rmajor, rminor uint64
	data           string
}

func readCPIO(t *testing.T, b []byte) (map[string]entry, []string) {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("read cpio: %v", err)
	}
	m := map[string]entry{}
	var order []string
	for _, r := range recs {
		data, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatalf("read %s: %v", r.Name, err)
		}
		m[r.Name] = entry{mode: r.Mode, rmajor: r.Rmajor, rminor: r.Rminor, data: string(data)}
		order = append(order, r.Name)
	}
	return m, order
}

// fakeLab makes a Config whose files are small fakes in a temporary folder.
func fakeLab(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	write := func(name, data string, perm os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, m := range moduleNames() {
		write("modules/"+m+".ko", "module "+m, 0o644)
	}
	return Config{
		QEMU:    write("qemu", "#!/bin/sh\nexit 0\n", 0o755),
		Kernel:  write("vmlinuz", "kernel", 0o644),
		Modules: filepath.Join(dir, "modules"),
		Busybox: write("busybox", "busybox binary", 0o755),
		Payload: map[string]string{
			"vmm":              write("host/vmm", "vmm binary", 0o755),
			"/images/disk.img": write("host/disk.img", strings.Repeat("d", 5000), 0o600),
			"/payload/a/b/c":   write("host/c", "", 0o644),
		},
		Script: "echo hello\n",
	}
}

func TestInitramfs(t *testing.T) {
	cfg := fakeLab(t)
	f := frame{nonce: "n0nce"}
	var all bytes.Buffer
	if err := writeInitramfs(&all, cfg, f); err != nil {
		t.Fatalf("writeInitramfs: %v", err)
	}
	files, err := payloadFiles(cfg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var payload bytes.Buffer
	if err := writePayload(&payload, files); err != nil {
		t.Fatal(err)
	}
	if payload.Len()%512 != 0 || !bytes.HasPrefix(all.Bytes(), payload.Bytes()) {
		t.Fatalf("initramfs does not start with the payload archive padded to 512 bytes (%d)", payload.Len())
	}
	zr, err := gzip.NewReader(bytes.NewReader(all.Bytes()[payload.Len():]))
	if err != nil {
		t.Fatalf("base archive is not gzip: %v", err)
	}
	base, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}

	pm, porder := readCPIO(t, payload.Bytes())
	bm, _ := readCPIO(t, base)
	tests := []struct {
		archive map[string]entry
		name    string
		mode    uint64
		data    string
	}{
		{pm, "payload", 0o040755, ""},
		{pm, "payload/vmm", 0o100755, "vmm binary"},
		{pm, "images", 0o040755, ""},
		{pm, "images/disk.img", 0o100600, strings.Repeat("d", 5000)},
		{pm, "payload/a/b", 0o040755, ""},
		{pm, "payload/a/b/c", 0o100644, ""},
		{bm, "bin/busybox", 0o100755, "busybox binary"},
		{bm, "lib/modules/kvm-amd.ko", 0o100644, "module kvm-amd"},
		{bm, "lib/modules/irqbypass.ko", 0o100644, "module irqbypass"},
		{bm, "init", 0o100755, f.initScript()},
		{bm, "hull/lib.sh", 0o100644, f.libScript()},
		{bm, "hull/script", 0o100644, "echo hello\n"},
		{bm, "tmp", 0o041777, ""},
		{bm, "dev/console", 0o020600, ""},
	}
	for _, tc := range tests {
		e, ok := tc.archive[tc.name]
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if e.mode != tc.mode || e.data != tc.data {
			t.Errorf("%s: mode %o data %.40q, want mode %o data %.40q", tc.name, e.mode, e.data, tc.mode, tc.data)
		}
	}
	if c := bm["dev/console"]; c.rmajor != 5 || c.rminor != 1 {
		t.Errorf("dev/console is %d:%d, want 5:1", c.rmajor, c.rminor)
	}
	// The kernel creates no parent folders: each must come before what it holds.
	seen := map[string]bool{}
	for _, n := range porder {
		if d := filepath.Dir(n); d != "." && !seen[d] {
			t.Errorf("%s comes before its folder %s", n, d)
		}
		seen[n] = true
	}
}

func TestInitScript(t *testing.T) {
	s := frame{nonce: "abc"}.initScript()
	// The modules load in dependency order, then the script runs framed by markers.
	want := []string{"HULL-LAB-INIT-abc", "irqbypass ccp kvm kvm-amd", "/dev/kvm", "HULL-LAB-BEGIN-abc",
		". /hull/lib.sh; . /hull/script", "HULL-LAB-EXIT-abc", "poweroff -f"}
	at := 0
	for _, w := range want {
		i := strings.Index(s[at:], w)
		if i < 0 {
			t.Fatalf("init script lacks %q after offset %d:\n%s", w, at, s)
		}
		at += i + len(w)
	}
}

// TestModulesMatchLabKernel checks that scripts/lab-kernel copies the modules L1
// loads, in the same order: its cache key is that list, so a module added here and
// not there would leave CI machines with a cache that lacks it.
func TestModulesMatchLabKernel(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "scripts", "lab-kernel"))
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(b), "\nmodules=(")
	list, _, ok2 := strings.Cut(list, ")")
	if !ok || !ok2 {
		t.Fatal("scripts/lab-kernel has no modules=( ... ) list")
	}
	var got []string
	for _, f := range strings.Fields(list) {
		got = append(got, strings.TrimSuffix(filepath.Base(f), ".ko"))
	}
	if want := moduleNames(); !slices.Equal(got, want) {
		t.Errorf("scripts/lab-kernel copies %v, L1 loads %v", got, want)
	}
}

// TestModuleOrder checks, on the cached modules, that each one's dependencies (modinfo
// depends, and softdep pre: by module name or alias) load before it: L1 has no
// modprobe to resolve them.
func TestModuleOrder(t *testing.T) {
	modinfo := testenv.RequireBinary(t, "modinfo")
	dir := cache.Dir(cache.DefaultDir)
	if v := os.Getenv("HULL_CACHE"); v != "" {
		dir = cache.Dir(v)
	}
	info := func(ko, field string) []string {
		t.Helper()
		out, err := exec.Command(modinfo, "-F", field, ko).Output()
		if err != nil {
			t.Fatalf("modinfo -F %s %s: %v", field, ko, err)
		}
		return strings.FieldsFunc(string(out), func(r rune) bool { return r == ',' || r == '\n' || r == ' ' })
	}
	loaded := map[string]bool{}
	for _, m := range moduleNames() {
		ko := filepath.Join(dir.LabModules(), m+".ko")
		testenv.RequireFile(t, ko, "the lab's module "+m+" (scripts/lab-kernel)")
		var deps []string
		for _, d := range info(ko, "depends") {
			deps = append(deps, strings.ReplaceAll(d, "-", "_"))
		}
		for _, d := range info(ko, "softdep") {
			if d != "pre:" && d != "post:" {
				deps = append(deps, d)
			}
		}
		for _, d := range deps {
			if !loaded[d] {
				t.Errorf("%s needs %s, which no module before it provides (order %v)", m, d, moduleNames())
			}
		}
		loaded[strings.ReplaceAll(m, "-", "_")] = true
		for _, a := range info(ko, "alias") {
			loaded[a] = true
		}
	}
}

func TestGuestPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"vmm", "/payload/vmm", true},
		{"dir/disk.img", "/payload/dir/disk.img", true},
		{"/images/x", "/images/x", true},
		{"/payload//x/./y", "/payload/x/y", true},
		{"", "", false},
		{"../etc/passwd", "", false},
		{"/payload/../init", "", false},
		{"/init", "", false},
		{"/", "", false},
		{"/payload", "", false},
		{"/proc/x", "", false},
		{"/dev/kvm", "", false},
		{"/bin/busybox", "", false},
		{"/hull/script", "", false},
		{"/lib/modules/kvm.ko", "", false},
		{"/binary", "/binary", true},
	}
	for _, tc := range tests {
		got, err := guestPath(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("guestPath(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestPayloadCollision(t *testing.T) {
	if _, err := payloadFiles(map[string]string{"x": "/a", "/payload/x": "/b"}); err == nil {
		t.Error("two payload keys landing on /payload/x were accepted")
	}
}

func TestParse(t *testing.T) {
	f := frame{nonce: "n1"}
	tests := []struct {
		name, transcript string
		out              string
		code             int
		err              string
	}{
		{"plain", "[ 1.0] noise\nHULL-LAB-INIT-n1 1.5\nHULL-LAB-BEGIN-n1\nhello\nworld\n\nHULL-LAB-EXIT-n1 0\n[ 2.0] reboot: Power down\n", "hello\nworld\n", 0, ""},
		{"no trailing newline", "HULL-LAB-BEGIN-n1\npartial\nHULL-LAB-EXIT-n1 3\n", "partial", 3, ""},
		{"empty output", "HULL-LAB-BEGIN-n1\n\nHULL-LAB-EXIT-n1 0\n", "", 0, ""},
		{"foreign markers", "HULL-LAB-BEGIN-n1\nHULL-LAB-EXIT-other 9\nok\n\nHULL-LAB-EXIT-n1 1\n", "HULL-LAB-EXIT-other 9\nok\n", 1, ""},
		{"setup error", "HULL-LAB-INIT-n1 1\n\nHULL-LAB-ERROR-n1 insmod kvm.ko failed\n", "", 0, "insmod kvm.ko failed"},
		{"never began", "Kernel panic - not syncing\n", "", 0, "never started"},
		{"stopped early", "HULL-LAB-BEGIN-n1\nhalf\n", "half\n", 0, "before the script's exit marker"},
		{"bad status", "HULL-LAB-BEGIN-n1\n\nHULL-LAB-EXIT-n1 x\n", "", 0, "bad exit marker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code, err := f.parse(tc.transcript)
			if out != tc.out || code != tc.code {
				t.Errorf("parse = %q, %d; want %q, %d", out, code, tc.out, tc.code)
			}
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("parse error %v, want one saying %q", err, tc.err)
			}
		})
	}
}

func TestSteps(t *testing.T) {
	f := frame{nonce: "n2"}
	out := "before\nHULL-LAB-STEP-n2 BEGIN boot\nline 1\nline 2\n\nHULL-LAB-STEP-n2 END boot 0\n" +
		"between\nHULL-LAB-STEP-n2 BEGIN fail\nno newline\nHULL-LAB-STEP-n2 END fail 2\n" +
		"HULL-LAB-STEP-n2 BEGIN hung\nstarted\n"
	want := []Step{
		{Name: "boot", Output: "line 1\nline 2\n", ExitCode: 0},
		{Name: "fail", Output: "no newline", ExitCode: 2},
		{Name: "hung", Output: "started\n", ExitCode: -1},
	}
	got := f.steps(out)
	if len(got) != len(want) {
		t.Fatalf("steps = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	r := Result{Output: out, frame: f}
	if s, ok := r.Step("fail"); !ok || s.ExitCode != 2 {
		t.Errorf("Step(fail) = %+v, %v", s, ok)
	}
	if _, ok := r.Step("absent"); ok {
		t.Error("Step(absent) found a step")
	}
}

// FuzzParse feeds arbitrary console output (L1, and what runs in it, controls it) to
// the parsers: they must not panic, and what they return must come from the input.
func FuzzParse(f *testing.F) {
	f.Add("HULL-LAB-BEGIN-z\nhi\n\nHULL-LAB-EXIT-z 0\n")
	f.Add("HULL-LAB-STEP-z BEGIN a\nx\nHULL-LAB-STEP-z END a 1\nHULL-LAB-STEP-z BEGIN b")
	f.Add("HULL-LAB-ERROR-z boom")
	f.Add("HULL-LAB-BEGIN-z\n\nHULL-LAB-EXIT-z 99999999999999999999\n")
	fr := frame{nonce: "z"}
	f.Fuzz(func(t *testing.T, s string) {
		out, _, _ := fr.parse(s)
		if !strings.Contains(s, out) {
			t.Fatalf("output %q is not part of the transcript", out)
		}
		for _, st := range fr.steps(s) {
			if !strings.Contains(s, st.Output) || !strings.Contains(s, st.Name) {
				t.Fatalf("step %+v is not part of the transcript", st)
			}
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"ok", func(*Config) {}, ""},
		{"no qemu", func(c *Config) { c.QEMU = "/nonexistent/qemu" }, "qemu-system-x86"},
		{"no kernel", func(c *Config) { c.Kernel = "/nonexistent/vmlinuz" }, "scripts/lab-kernel"},
		{"kernel is a folder", func(c *Config) { c.Kernel = c.Modules }, "not a regular file"},
		{"no module", func(c *Config) { os.Remove(filepath.Join(c.Modules, "ccp.ko")) }, "ccp.ko"},
		{"no script", func(c *Config) { c.Script = " \n" }, "empty script"},
		{"bad payload path", func(c *Config) { c.Payload["/proc/x"] = c.Kernel }, "reserves"},
		{"missing payload", func(c *Config) { c.Payload["y"] = "/nonexistent/y" }, "payload y"},
		{"tiny memory", func(c *Config) { c.Memory = 16 }, "too small"},
		{"negative cpus", func(c *Config) { c.CPUs = -1 }, "out of range"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "negative timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeLab(t)
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Validate() = %v, want an error saying %q", err, tc.err)
			}
		})
	}
}

// TestRunFailures runs a fake QEMU: Run must report an L1 that hangs, dies or never
// runs the script, kill it on timeout and cancellation, and say what it last printed.
func TestRunFailures(t *testing.T) {
	tests := []struct {
		name    string
		qemu    string
		timeout time.Duration
		cancel  bool
		err     []string
	}{
		{"hangs", "echo booting; echo still booting; exec sleep 60", 500 * time.Millisecond, false,
			[]string{"did not finish within 500ms", "still booting"}},
		{"cancelled", "echo early; exec sleep 60", time.Minute, true, []string{"cancelled", "early"}},
		{"dies", "echo oops >&2; exit 1", time.Minute, false, []string{"exit status 1", "oops"}},
		{"panics", "echo 'Kernel panic - not syncing: no init'; exit 0", time.Minute, false,
			[]string{"never started the script", "Kernel panic"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fakeLab(t)
			if err := os.WriteFile(cfg.QEMU, []byte("#!/bin/sh\n"+tc.qemu+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			cfg.Timeout = tc.timeout
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				time.AfterFunc(500*time.Millisecond, cancel)
			}
			_, err := Run(ctx, cfg)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, w := range tc.err {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.cancel && !errors.Is(err, context.Canceled) {
				t.Errorf("error %v is not context.Canceled", err)
			}
		})
	}
}

func TestRunCleansUp(t *testing.T) {
	cfg := fakeLab(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatal("Run of a QEMU that prints nothing succeeded")
	}
	left, err := os.ReadDir(tmp)
	if err != nil || len(left) != 0 {
		t.Errorf("Run left %v in TMPDIR (%v)", left, err)
	}
}

func TestLockSerializes(t *testing.T) {
	release, err := lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := lock(ctx); err == nil {
		t.Fatal("a second lock was granted while the first was held")
	}
	release()
	again, err := lock(context.Background())
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}

// The console reports a soft lockup of L1's kernel once, whatever follows.
func TestConsoleLockup(t *testing.T) {
	n := 0
	c := console{log: io.Discard, lockup: func() { n++ }}
	for _, l := range []string{
		"HULL-LAB-STEP-x BEGIN exec-uname\n",
		"[   40.618531] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [hull:159]\n",
		"[   44.526408] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kworker/0:2:93]\n",
	} {
		c.line(l)
	}
	if n != 1 {
		t.Errorf("lockup reported %d times, want once", n)
	}
	quiet := console{log: io.Discard, lockup: func() { t.Error("a lockup in an ordinary line") }}
	quiet.line("watchdog: enabled soft lockup detector\n")
}

// Every console line tells the silence watchdog that L1 is alive.
func TestConsolePrinted(t *testing.T) {
	n := 0
	c := console{log: io.Discard, printed: func() { n++ }}
	c.line("one\n")
	c.line("two\n")
	if n != 2 {
		t.Errorf("printed told %d times for 2 lines", n)
	}
}
