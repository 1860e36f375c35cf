package container

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		in    string
		start uint64
		ok    bool
	}{
		{in: "42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10", start: 12345, ok: true},
		{in: "42 (a) b) c) R 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 777 1000 10", start: 777, ok: true},
		{in: "42 (sh) Z 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10"},
		{in: "42 (sh) S 1 42"},
		{in: "garbage"},
		{in: "42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 x 1000 10"},
	}
	for _, tt := range tests {
		start, ok := parseStat([]byte(tt.in))
		if start != tt.start || ok != tt.ok {
			t.Errorf("parseStat(%q) = %d, %v; want %d, %v", tt.in, start, ok, tt.start, tt.ok)
		}
	}
}

func TestAliveSelf(t *testing.T) {
	start, ok := procStart(os.Getpid())
	tests := []struct {
		name string
		c    Container
		want bool
	}{
		{name: "this process", c: Container{State: State{Pid: os.Getpid(), PidStart: start}}, want: ok},
		{name: "reused pid", c: Container{State: State{Pid: os.Getpid(), PidStart: start + 1}}},
		{name: "no pid", c: Container{}},
	}
	for _, tt := range tests {
		if got := tt.c.alive(); got != tt.want {
			t.Errorf("%s: alive = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	ids := []string{
		"abc1000000000000000000000000000000000000000000000000000000000000",
		"abc2000000000000000000000000000000000000000000000000000000000000",
		"def0000000000000000000000000000000000000000000000000000000000000",
	}
	for i, id := range ids {
		c := &Container{Dir: filepath.Join(containersDir(root), id), State: State{ID: id, Name: "n" + id[:4], Created: time.Unix(int64(i), 0)}}
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := c.save(); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(containersDir(root), "0000000000000000000000000000000000000000000000000000000000000000"), 0o700) // no state: skipped
	tests := []struct {
		ref  string
		want string
		err  error
	}{
		{ref: "d", want: ids[2]},
		{ref: "abc1", want: ids[0]},
		{ref: ids[1], want: ids[1]},
		{ref: "nabc2", want: ids[1]},
		{ref: "abc", err: ErrAmbiguous},
		{ref: "zzz", err: ErrNotFound},
		{ref: "", err: ErrNotFound},
		{ref: "0000", err: ErrNotFound},
	}
	for _, tt := range tests {
		c, err := find(root, tt.ref)
		if !errors.Is(err, tt.err) || (err == nil && c.ID != tt.want) {
			t.Errorf("find(%q) = %v, %v; want %s, %v", tt.ref, c, err, tt.want, tt.err)
		}
	}
	all, err := list(root)
	if err != nil || len(all) != 3 || all[0].ID != ids[0] || all[2].ID != ids[2] {
		t.Errorf("list = %v, %v; want the three, oldest first", all, err)
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "web", ok: true}, {name: "a.b-c_d9", ok: true}, {name: "", ok: false},
		{name: "-x", ok: false}, {name: "a/b", ok: false}, {name: "a b", ok: false},
		{name: "9", ok: true}, {name: "_x", ok: false}, {name: "x\u00e9", ok: false}, {name: "x\n", ok: false},
		{name: "a" + strings.Repeat("b", 127), ok: true}, {name: "a" + strings.Repeat("b", 128), ok: false},
	}
	for _, tt := range tests {
		if err := ValidateName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v", tt.name, err)
		}
	}
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if n := randomName(id); ValidateName(n) != nil {
		t.Errorf("randomName = %q, not a valid name", n)
	}
}

func TestCgroupsPath(t *testing.T) {
	tests := []struct {
		parent, want string
		ok           bool
	}{
		{parent: "", want: "/hull/x", ok: true}, {parent: "ci/jobs", want: "/ci/jobs/x", ok: true},
		{parent: "/top/", want: "/top/x", ok: true}, {parent: "../escape"}, {parent: "a/../b"}, {parent: "a b"}, {parent: "a//b"},
		{parent: "a/./b"}, {parent: "."}, {parent: "a/.."}, {parent: "a.b/c_d-9", want: "/a.b/c_d-9/x", ok: true}, {parent: "..a/b..", want: "/..a/b../x", ok: true},
	}
	for _, tt := range tests {
		got, err := cgroupsPath(tt.parent, "x")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("cgroupsPath(%q) = %q, %v; want %q, ok %v", tt.parent, got, err, tt.want, tt.ok)
		}
	}
}

// The image is hostile: its /etc/passwd may be a link out of the root filesystem.
func TestReadRootFile(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "inside"), []byte("inside\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/plain"), []byte("plain\n"), 0o644)
	os.Symlink("/inside", filepath.Join(root, "etc/abs"))
	os.Symlink("../../../../../../../../inside", filepath.Join(root, "etc/dotdot"))
	os.Symlink("/etc/hostname", filepath.Join(root, "etc/host"))
	os.Mkdir(filepath.Join(root, "etc/dir"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/big"), make([]byte, 100), 0o644)
	if err := unix.Mkfifo(filepath.Join(root, "etc/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
		max        int64
	}{
		{name: "/etc/plain", want: "plain\n"},
		{name: "/etc/abs", want: "inside\n"},
		{name: "/etc/dotdot", want: "inside\n"},
		{name: "/etc/host", want: ""}, // resolves to ROOT/etc/hostname, which does not exist
		{name: "/etc/dir", want: ""},
		{name: "/etc/fifo", want: ""}, // would block an open for reading
		{name: "/etc/missing", want: ""},
		{name: "/etc/big", want: string(make([]byte, 10)), max: 10},
	}
	for _, tt := range tests {
		max := tt.max
		if max == 0 {
			max = 1 << 20
		}
		got, err := readRootFile(root, tt.name, max)
		if err != nil || string(got) != tt.want {
			t.Errorf("readRootFile(%s) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
