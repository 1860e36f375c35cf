// Package containertest builds test fixtures for the container lifecycle: a busybox
// image whose single layer disk is made with mkfs.erofs, and an ImageSource serving it.
//
// It is for tests only; it must not import the CLI.
package containertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/internal/testenv"
)

// Passwd and Group are the fixture image's account files.
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n"
	Group  = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nstaff:x:50:app\n"
)

// BusyboxDisk builds a busybox root filesystem (BusyboxTree) into an EROFS layer disk
// in dir and returns its path.
func BusyboxDisk(t testing.TB, dir string) string {
	t.Helper()
	mkfs := testenv.RequireBinary(t, "mkfs.erofs")
	tree := BusyboxTree(t, dir)
	disk := filepath.Join(dir, "busybox.erofs")
	if out, err := exec.Command(mkfs, "--quiet", disk, tree).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v: %s", err, out)
	}
	os.RemoveAll(tree)
	return disk
}

// BusyboxTree builds a busybox root filesystem in dir/tree (static busybox, a link per
// applet, /etc/passwd and /etc/group, /tmp, /home/app) and returns its path.
func BusyboxTree(t testing.TB, dir string) string {
	t.Helper()
	bb := testenv.RequireBinary(t, "busybox")
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"bin", "etc", "tmp", "root", "home/app", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(tree, "tmp"), 0o1777)
	os.Chown(filepath.Join(tree, "home/app"), 1000, 1000)
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, app := range strings.Fields(string(out)) {
		if app == "busybox" || strings.Contains(app, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(tree, "bin", app)); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"etc/passwd": Passwd, "etc/group": Group} {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// Images is an ImageSource holding fixed images by reference.
type Images map[string]*container.Image

// Image implements container.ImageSource.
func (im Images) Image(ctx context.Context, ref string) (*container.Image, error) {
	if i, ok := im[ref]; ok {
		return i, nil
	}
	return nil, fmt.Errorf("image %q: not found", ref)
}

// Busybox returns an ImageSource with "busybox" (command sh) built in dir.
func Busybox(t testing.TB, dir string) Images {
	t.Helper()
	disk := BusyboxDisk(t, dir)
	return Images{"busybox": {
		ID:     "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		Config: ocispec.Image{Config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}},
		Disks:  []string{disk},
	}}
}

// Leaks returns the mounts under dir still in /proc/self/mountinfo and the loop
// devices backed by files under dir.
func Leaks(t testing.TB, dir string) []string {
	t.Helper()
	var leaks []string
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			leaks = append(leaks, "mount "+f[4])
		}
	}
	// losetup -a, read from sysfs: each attached loop device names its backing file.
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir) {
			leaks = append(leaks, "loop "+f+": "+strings.TrimSpace(string(b)))
		}
	}
	return leaks
}
