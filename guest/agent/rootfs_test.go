package agent

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/guest"
)

func TestInRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "etc", "real"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"bin":         "usr/bin",
		"abs":         "/etc",
		"escape":      "../../../../..",
		"absescape":   "/../../..",
		"etc/up":      "../..",
		"loop":        "loop",
		"real/chain":  "../abs",
		"dangling":    "/nowhere/deep",
		"real/tohost": "/proc/self",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "/", want: ""},
		{in: "/etc/hosts", want: "etc/hosts"},
		{in: "/bin/sh", want: "usr/bin/sh"},
		{in: "/abs/passwd", want: "etc/passwd"},
		{in: "/escape/etc", want: "etc"},
		{in: "/absescape/x", want: "x"},
		{in: "/etc/up/usr", want: "usr"},
		{in: "/etc/up/up/usr", want: "up/usr"},
		{in: "/../../etc", want: "etc"},
		{in: "/real/chain/x", want: "etc/x"},
		{in: "/dangling/x", want: "nowhere/deep/x"},
		{in: "/real/tohost/mounts", want: "proc/self/mounts"},
		{in: "/missing/../bin/x", want: "usr/bin/x"},
		{in: "/loop/x", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := inRoot(root, tc.in)
			if tc.err {
				if err == nil {
					t.Errorf("inRoot(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if want := filepath.Join(root, tc.want); err != nil || got != want {
				t.Errorf("inRoot(%q) = %q, %v, want %q", tc.in, got, err, want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		opts []string
		want options
	}{
		{nil, options{}},
		{[]string{"nosuid", "noexec", "nodev", "ro"}, options{flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_RDONLY}},
		{[]string{"ro", "rw"}, options{}},
		{[]string{"nosuid", "strictatime", "mode=755", "size=65536k"}, options{flags: unix.MS_NOSUID | unix.MS_STRICTATIME, data: "mode=755,size=65536k"}},
		{[]string{"rbind", "rprivate"}, options{flags: unix.MS_BIND | unix.MS_REC, propagation: unix.MS_PRIVATE | unix.MS_REC}},
		{[]string{"newinstance", "ptmxmode=0666", "gid=5"}, options{data: "newinstance,ptmxmode=0666,gid=5"}},
		{[]string{"defaults", "tmpcopyup", ""}, options{}},
	}
	for _, tc := range tests {
		if got := parseOptions(tc.opts); got != tc.want {
			t.Errorf("parseOptions(%q) = %+v, want %+v", tc.opts, got, tc.want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want Config
		err  bool
	}{
		{in: "console=ttyS0 reboot=k panic=-1", want: Config{Port: 1024, Final: FinalRestart, Channel: "vsock"}},
		{in: "hull.port=2000 hull.final=poweroff quiet", want: Config{Port: 2000, Final: FinalPowerOff, Channel: "vsock"}},
		{in: "hull.final=none hull.channel=/dev/hvc0", want: Config{Port: 1024, Final: FinalNone, Channel: "/dev/hvc0"}},
		{in: "hull.channel=tcp", err: true},
		{in: "hull.port=0", err: true},
		{in: "hull.port=99999999999", err: true},
		{in: "hull.final=explode", err: true},
	}
	for _, tc := range tests {
		got, err := ParseCmdline(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseCmdline(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzParseCmdline: the command line is the VMM's, but the agent must not panic on it.
func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{"", "hull.port=1 hull.final=halt", "hull.port= =", "hull.final"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { ParseCmdline(s) })
}

func TestWithPath(t *testing.T) {
	tests := []struct {
		env, want []string
	}{
		{[]string{"A=1", "PATH=/bin"}, []string{"A=1", "PATH=/x:/bin"}},
		{[]string{"PATHX=1"}, []string{"PATHX=1", "PATH=/x:" + defaultPath}},
	}
	for _, tc := range tests {
		got := withPath(tc.env, "/x")
		if len(got) != len(tc.want) {
			t.Fatalf("withPath(%q) = %q, want %q", tc.env, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("withPath(%q) = %q, want %q", tc.env, got, tc.want)
			}
		}
	}
}

func TestSysctlNames(t *testing.T) {
	for _, k := range []string{"", "../../etc/passwd", "kernel/../../x", "net.ipv4.ip_forward\n", "a b"} {
		if err := applySysctl(map[string]string{k: "1"}); err == nil {
			t.Errorf("applySysctl accepted %q", k)
		}
	}
}

// TestWriteFileStaysInRoot: a hostile image whose /etc is a symlink out of the root, or
// whose target file is a symlink, still gets the file inside its root.
func TestWriteFileStaysInRoot(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(root, guest.File{Path: "/etc/hosts", Data: []byte("127.0.0.1 localhost\n"), ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(outside); len(left) != 0 {
		t.Fatalf("wrote %v outside the root", left)
	}
	in := filepath.Join(root, outside, "hosts") // the link's target, taken inside the root
	b, err := os.ReadFile(in)
	if err != nil || string(b) != "127.0.0.1 localhost\n" {
		t.Fatalf("file in the root: %q, %v", b, err)
	}
	if fi, _ := os.Stat(in); fi.Mode().Perm() != 0o444 {
		t.Errorf("read-only file has mode %v", fi.Mode().Perm())
	}
	os.MkdirAll(filepath.Join(root, "srv"), 0o755)
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "srv", "f")); err != nil {
		t.Fatal(err)
	}
	writeFile(root, guest.File{Path: "/srv/f", Data: []byte("x")})
	if _, err := os.Stat(filepath.Join(outside, "victim")); err == nil {
		t.Error("followed a symlink out of the root")
	}
}
