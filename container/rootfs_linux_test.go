package container

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullvm/hull/internal/testenv"
)

// Both ways of mounting the layers (detached mounts, mount points) give the same root
// filesystem, writes go to the writable layer only, and unmounting leaves no mount and
// no loop device behind.
func TestMountRootfs(t *testing.T) {
	testenv.RequireRoot(t)
	mkfs := testenv.RequireBinary(t, "mkfs.erofs")
	dir := t.TempDir()
	var disks []string
	for i, content := range []string{"lower\n", "upper\n"} {
		tree := filepath.Join(dir, "tree"+string(rune('0'+i)))
		if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{"etc/hostname": content, "etc/layer" + string(rune('0'+i)): "x"}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(tree, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		disk := filepath.Join(dir, "layer"+string(rune('0'+i))+".erofs")
		if out, err := exec.Command(mkfs, "--quiet", disk, tree).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.erofs: %v: %s", err, out)
		}
		disks = append(disks, disk)
	}
	tests := []struct {
		name   string
		detach bool
	}{{name: "detached", detach: true}, {name: "mount points", detach: false}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cdir := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			rootfs := filepath.Join(cdir, "rootfs")
			if err := mountRootfs(cdir, rootfs, disks, tt.detach); err != nil {
				t.Fatal(err)
			}
			got := []string{readOr(filepath.Join(rootfs, "etc/hostname")), readOr(filepath.Join(rootfs, "etc/layer0")), readOr(filepath.Join(rootfs, "etc/layer1"))}
			werr := os.WriteFile(filepath.Join(rootfs, "etc/new"), []byte("w"), 0o644)
			upper := readOr(filepath.Join(cdir, "upper/etc/new"))
			// fsync in the container must reach the disk: no "volatile" overlay.
			if opts := mountOptions(t, rootfs); strings.Contains(opts, "volatile") {
				t.Errorf("overlay mounted volatile (fsync is a no-op): %s", opts)
			}
			if err := UnmountRootfs(cdir, rootfs); err != nil {
				t.Error(err)
			}
			if want := []string{"upper\n", "x", "x"}; strings.Join(got, "|") != strings.Join(want, "|") || werr != nil || upper != "w" {
				t.Errorf("root filesystem read %q (want %q), write %v, writable layer %q", got, want, werr, upper)
			}
			if leaks := mountsAndLoops(t, cdir, disks); len(leaks) > 0 {
				t.Errorf("left behind: %v", leaks)
			}
		})
	}
}

func readOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// mountOptions returns the super options of the mount at dir, from mountinfo.
func mountOptions(t *testing.T, dir string) string {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir {
			return f[len(f)-1]
		}
	}
	t.Fatalf("%s is not a mount point", dir)
	return ""
}

// mountsAndLoops lists the mounts under dir and the loop devices backed by disks.
func mountsAndLoops(t *testing.T, dir string, disks []string) []string {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			left = append(left, "mount "+f[4])
		}
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, d := range disks {
			if strings.TrimSpace(string(b)) == d {
				left = append(left, "loop "+f)
			}
		}
	}
	return left
}
