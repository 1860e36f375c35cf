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
// filesystem under the init layer, writes go to the writable layer only, only a
// container removed at exit has a volatile writable layer, and unmounting leaves no
// mount and no loop device behind.
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
	init := initLayer(dir)
	if init == "" {
		t.Fatal("no init layer")
	}
	if again := initLayer(dir); again != init {
		t.Fatalf("init layer %q, then %q", init, again)
	}
	tests := []struct {
		name             string
		detach, volatile bool
	}{
		{name: "detached", detach: true},
		{name: "mount points", detach: false},
		{name: "removed at exit", detach: true, volatile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cdir := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			rootfs := filepath.Join(cdir, "rootfs")
			if err := mountRootfs(cdir, rootfs, disks, rootfsOptions{init: init, detach: tt.detach, volatile: tt.volatile}); err != nil {
				t.Fatal(err)
			}
			// The runtime's mount points come from the init layer, not the writable
			// one, and the image's files win over the init layer's.
			for _, d := range []string{"proc", "dev", "sys"} {
				if _, err := os.Stat(filepath.Join(rootfs, d)); err != nil {
					t.Errorf("/%s in the root filesystem: %v", d, err)
				}
			}
			got := []string{readOr(filepath.Join(rootfs, "etc/hostname")), readOr(filepath.Join(rootfs, "etc/layer0")), readOr(filepath.Join(rootfs, "etc/layer1"))}
			werr := os.WriteFile(filepath.Join(rootfs, "etc/new"), []byte("w"), 0o644)
			upper := readOr(filepath.Join(cdir, "upper/etc/new"))
			if ents, _ := os.ReadDir(filepath.Join(cdir, "upper")); len(ents) != 1 {
				t.Errorf("writable layer holds %d entries, want only etc", len(ents))
			}
			// fsync in a kept container must reach the disk: no "volatile" overlay.
			if opts := mountOptions(t, rootfs); strings.Contains(opts, "volatile") != tt.volatile {
				t.Errorf("overlay options %s: volatile should be %v", opts, tt.volatile)
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

// The init layer lies under the image: an image whose /etc is a symbolic link keeps
// it, and its /proc comes from the init layer only because the image has none.
func TestInitLayerUnderTheImage(t *testing.T) {
	testenv.RequireRoot(t)
	mkfs := testenv.RequireBinary(t, "mkfs.erofs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "usr/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr/etc/hosts"), []byte("image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/etc", filepath.Join(tree, "etc")); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "layer.erofs")
	if out, err := exec.Command(mkfs, "--quiet", disk, tree).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v: %s", err, out)
	}
	init := initLayer(dir)
	cdir := filepath.Join(dir, "c")
	rootfs := filepath.Join(cdir, "rootfs")
	if err := mountRootfs(cdir, rootfs, []string{disk}, rootfsOptions{init: init, detach: true}); err != nil {
		t.Fatal(err)
	}
	defer UnmountRootfs(cdir, rootfs)
	if st, err := os.Lstat(filepath.Join(rootfs, "etc")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the image's /etc link: %v, %v", st, err)
	}
	if got := readOr(filepath.Join(rootfs, "etc/hosts")); got != "image\n" {
		t.Errorf("/etc/hosts reads %q, want the image's", got)
	}
	if st, err := os.Stat(filepath.Join(rootfs, "proc")); err != nil || !st.IsDir() {
		t.Errorf("/proc from the init layer: %v", err)
	}
}
