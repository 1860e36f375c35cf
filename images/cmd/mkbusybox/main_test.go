package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullvm/hull/images"
	"github.com/hullvm/hull/internal/testenv"
)

// TestBusyboxImage builds the default image twice (same digests), loads it and mounts
// its layer disk: busybox, an applet link, /etc/passwd, /tmp and /root must be there.
func TestBusyboxImage(t *testing.T) {
	testenv.RequireLoop(t)
	testenv.RequireFile(t, "/bin/busybox", "Debian's busybox-static")
	testenv.RequireBinary(t, "mkfs.erofs")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	root := filepath.Join(dir, "state")
	var out bytes.Buffer
	if err := run(bg(t), []string{"-out", a, "-root", root}, &out); err != nil {
		t.Fatal(err)
	}
	if err := run(bg(t), []string{"-out", b}, &out); err != nil {
		t.Fatal(err)
	}
	ia, _ := os.ReadFile(filepath.Join(a, "index.json"))
	ib, _ := os.ReadFile(filepath.Join(b, "index.json"))
	if !bytes.Equal(ia, ib) {
		t.Errorf("two builds differ:\n%s\n%s", ia, ib)
	}
	s, err := images.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Get(bg(t), "busybox")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(img.Config.Config.Cmd, " "); got != "/bin/sh" {
		t.Errorf("Cmd = %q, want /bin/sh", got)
	}
	disks, err := s.Disks(bg(t), img)
	if err != nil || len(disks) != 1 {
		t.Fatalf("disks %v, %v; want one", disks, err)
	}
	mp := filepath.Join(dir, "mnt")
	os.Mkdir(mp, 0o755)
	if o, err := exec.Command("mount", "-t", "erofs", "-o", "loop,ro", disks[0], mp).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, o)
	}
	t.Cleanup(func() { exec.Command("umount", mp).Run() })
	checks := []struct{ path, want string }{
		{"bin/sh", "busybox"},
		{"bin/ls", "busybox"},
	}
	for _, c := range checks {
		if l, err := os.Readlink(filepath.Join(mp, c.path)); err != nil || l != c.want {
			t.Errorf("%s -> %q, %v; want %s", c.path, l, err, c.want)
		}
	}
	if p, err := os.ReadFile(filepath.Join(mp, "etc/passwd")); err != nil || !strings.HasPrefix(string(p), "root:x:0:0:") {
		t.Errorf("etc/passwd = %q, %v", p, err)
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"tmp", os.ModeDir | os.ModeSticky | 0o777}, {"root", os.ModeDir | 0o700}} {
		if fi, err := os.Stat(filepath.Join(mp, d.path)); err != nil || fi.Mode() != d.mode {
			t.Errorf("%s: %v, %v; want mode %v", d.path, fi.Mode(), err, d.mode)
		}
	}
	out.Reset()
	cmd := exec.Command(filepath.Join(mp, "bin/busybox"), "echo", "hi")
	if o, err := cmd.Output(); err != nil || string(o) != "hi\n" {
		t.Errorf("bin/busybox echo hi = %q, %v", o, err)
	}
}

func bg(t *testing.T) context.Context { return t.Context() }
