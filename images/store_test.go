package images

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hullvm/hull/internal/testenv"
)

func importTar(t *testing.T, s *Store, name string, ents ...ent) *Image {
	t.Helper()
	img, err := s.Import(bg(), writeFile(t, filepath.Join(t.TempDir(), "rootfs.tar"), tarOf(t, ents...)), ImportOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestNames(t *testing.T) {
	testenv.RequireRoot(t)
	s := openStore(t)
	img := importTar(t, s, "docker.io/library/busybox", ent{name: "a", body: "a"})
	tests := []struct {
		ref  string
		want error
	}{
		{"busybox", nil},
		{"busybox:latest", nil},
		{"docker.io/busybox:latest", nil},
		{"index.docker.io/library/busybox", nil},
		{string(img.ID), nil},
		{img.ID.Encoded()[:12], nil},
		{"busybox@" + string(img.Manifest), nil},
		{"busybox:1", ErrNotFound},
		{"other", ErrNotFound},
		{"abcd", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := s.Get(bg(), tc.ref)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Get(%q) err = %v, want %v", tc.ref, err, tc.want)
			}
			if err == nil && got.ID != img.ID {
				t.Errorf("Get(%q) = %s, want %s", tc.ref, got.ID, img.ID)
			}
			if err != nil && !strings.Contains(err.Error(), "hull pull") {
				t.Errorf("error %q does not say to pull or load", err)
			}
		})
	}
}

// TestTagRemovePrune walks an image through tag, untag, delete and garbage collection.
func TestTagRemovePrune(t *testing.T) {
	testenv.RequireRoot(t)
	s := openStore(t)
	shared := ent{name: "shared", body: "same layer"}
	a := importTar(t, s, "a:1", shared)
	if err := s.Tag(bg(), "a:1", "b:2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(bg(), "b:2"); got == nil || got.ID != a.ID {
		t.Fatalf("b:2 = %v, want %s", got, a.ID)
	}
	if _, err := s.Remove(bg(), string(a.ID), false); err == nil {
		t.Fatal("removing an image with two names by ID without force succeeded")
	}
	rm, err := s.Remove(bg(), "a:1", false)
	if err != nil || !slices.Equal(rm.Untagged, []string{"a:1"}) || len(rm.Deleted) != 0 {
		t.Fatalf("rmi a:1 = %+v, %v; want untagged only", rm, err)
	}
	disks, err := s.Disks(bg(), a)
	if err != nil {
		t.Fatal(err)
	}
	rm, err = s.Remove(bg(), "b:2", false)
	if err != nil || len(rm.Deleted) != 1 || rm.Deleted[0] != a.ID {
		t.Fatalf("rmi b:2 = %+v, %v; want deleted %s", rm, err, a.ID)
	}
	if _, err := os.Stat(disks[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layer disk %s still there after the last image went: %v", disks[0], err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256")); len(ents) != 0 {
		t.Errorf("blobs left after the last image went: %d", len(ents))
	}
	// A layer two images share stays while one of them does.
	b := importTar(t, s, "b:1", shared)
	c, err := s.Import(bg(), writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarOf(t, shared)), ImportOptions{Name: "c:1", Created: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if b.ID == c.ID || b.Layers[0].DiffID != c.Layers[0].DiffID {
		t.Fatalf("want two images sharing one layer: %+v %+v", b, c)
	}
	if _, err := s.Remove(bg(), "b:1", false); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Disks(bg(), c); err != nil || len(d) != 1 {
		t.Fatalf("disks of c:1 after removing b:1: %v, %v", d, err)
	}
}

// TestConcurrentImports runs imports from several Store values (as separate processes
// would be) at once: every image must be whole afterwards.
func TestConcurrentImports(t *testing.T) {
	testenv.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "state")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(root)
			if err != nil {
				errs <- err
				return
			}
			file := filepath.Join(t.TempDir(), "r.tar")
			os.WriteFile(file, tarOf(t, ent{name: "common", body: "c"}, ent{name: fmt.Sprint("own", i%4), body: "x"}), 0o644)
			_, err = s.Import(bg(), file, ImportOptions{Name: fmt.Sprintf("img:%d", i)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	s, _ := Open(root)
	checkConsistent(t, s, 8)
}

// checkConsistent checks that every image the index lists is whole.
func checkConsistent(t *testing.T, s *Store, names int) {
	t.Helper()
	list, err := s.List(bg())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, img := range list {
		n += len(img.Names)
		for _, l := range img.Layers {
			if !s.exists(s.blobPath(l.Digest)) {
				t.Errorf("image %s: layer blob %s missing", img.ID, l.Digest)
			}
		}
		if _, err := s.Disks(bg(), img); err != nil {
			t.Errorf("image %s: %v", img.ID, err)
		}
	}
	if names >= 0 && n != names {
		t.Errorf("%d names in the store, want %d", n, names)
	}
}

// TestKillLeavesStoreConsistent kills importing processes with SIGKILL at varied moments
// and checks that the store is consistent and that prune clears the leftovers.
func TestKillLeavesStoreConsistent(t *testing.T) {
	testenv.RequireRoot(t)
	if os.Getenv("HULL_IMAGES_CHILD") != "" {
		return // the child's work is in TestHelperImportLoop
	}
	root := filepath.Join(t.TempDir(), "state")
	big := filepath.Join(t.TempDir(), "big.tar")
	var ents []ent
	for i := range 200 {
		ents = append(ents, ent{name: fmt.Sprintf("f%03d", i), body: strings.Repeat(fmt.Sprint(i), 2000)})
	}
	writeFile(t, big, tarOf(t, ents...))
	for i := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperImportLoop$", "-test.count=1")
		cmd.Env = append(os.Environ(), "HULL_IMAGES_CHILD="+root, "HULL_IMAGES_TAR="+big)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+150*i) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		s, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, s, -1)
		l, _ := s.List(bg())
		tmp, _ := os.ReadDir(filepath.Join(s.dir, "tmp"))
		t.Logf("after kill %d: %d images, %d work folders", i, len(l), len(tmp))
	}
	s, _ := Open(root)
	if _, err := s.Prune(bg()); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.dir, "tmp")); len(ents) != 0 {
		t.Errorf("prune left %d work folders", len(ents))
	}
	trees, _ := filepath.Glob(filepath.Join(s.scratch, "hull-tree-*.lock"))
	for _, l := range trees {
		if lockFree(l) {
			t.Errorf("prune left the scratch tree %s of a dead process", l)
		}
	}
	checkConsistent(t, s, -1)
}

// TestHelperImportLoop is the child of TestKillLeavesStoreConsistent: it imports until
// killed.
func TestHelperImportLoop(t *testing.T) {
	root := os.Getenv("HULL_IMAGES_CHILD")
	if root == "" {
		return
	}
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if _, err := s.Import(bg(), os.Getenv("HULL_IMAGES_TAR"), ImportOptions{Name: fmt.Sprintf("loop:%d", i), Created: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			s.Remove(bg(), fmt.Sprintf("loop:%d", i-1), false)
		}
	}
}

// TestLoadArchives loads the same image from a docker save tarball in legacy form (made
// here), from an OCI layout directory and from that layout as a gzip tarball.
func TestLoadArchives(t *testing.T) {
	testenv.RequireRoot(t)
	layer := tarOf(t, ent{name: "hello", body: "world"})
	layoutDir := writeLayout(t, t.TempDir(), layoutOpts{name: "docker.io/library/hello:1"}, layer)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	filepath.Walk(layoutDir, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(layoutDir, p)
		if fi.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
		return nil
	})
	tw.Close()
	ociTar := writeFile(t, filepath.Join(t.TempDir(), "oci.tar.gz"), gzipOf(t, buf.Bytes()))

	s0 := openStore(t)
	ref, err := s0.Load(bg(), layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := s0.readBlob(ref[0].ID, maxConfig)
	legacy := tarOf(t,
		ent{name: ref[0].ID.Encoded() + ".json", body: string(cfg)},
		ent{name: "abc/", typ: tar.TypeDir},
		ent{name: "abc/layer.tar", body: string(layer)},
		ent{name: "manifest.json", body: fmt.Sprintf(`[{"Config":%q,"RepoTags":["hello:1"],"Layers":["abc/layer.tar"]}]`, ref[0].ID.Encoded()+".json")},
	)
	escape := tarOf(t, ent{name: "manifest.json", body: `[{"Config":"../../etc/passwd","RepoTags":["bad:1"],"Layers":[]}]`})
	tests := []struct {
		name string
		path string
		err  string
	}{
		{"layout", layoutDir, ""},
		{"oci-tar-gz", ociTar, ""},
		{"docker-legacy", writeFile(t, filepath.Join(t.TempDir(), "legacy.tar"), legacy), ""},
		{"escaping-path", writeFile(t, filepath.Join(t.TempDir(), "escape.tar"), escape), "escapes the layer root"},
		{"not-an-image", writeFile(t, filepath.Join(t.TempDir(), "x.tar"), layer), "neither a docker save tarball nor an OCI image layout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			imgs, err := s.Load(bg(), tc.path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].ID != ref[0].ID || !slices.Equal(imgs[0].Names, []string{"hello:1"}) {
				t.Fatalf("loaded %+v, want %s named hello:1", imgs, ref[0].ID)
			}
		})
	}
}
