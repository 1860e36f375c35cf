package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hullvm/hull/internal/testenv"
)

// benchLayer makes a deterministic layer tarball of about 100 MB in a few thousand
// files: text-like files and incompressible ones in nested directories.
func benchLayer(b *testing.B) []byte {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	const files = 4000
	total := 0
	for i := range files {
		dir := fmt.Sprintf("usr/lib/pkg%02d/sub%d", i%60, i%7)
		if i < 60*7 {
			tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch})
		}
		size := 1024 + r.IntN(48<<10)
		body := make([]byte, size)
		if i%2 == 0 {
			for j := range body {
				body[j] = byte(r.Uint32())
			}
		} else {
			for j := range body {
				body[j] = "abcdefgh ijklmnop\n"[r.IntN(18)]
			}
		}
		total += size
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/f%04d", dir, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size), ModTime: epoch})
		tw.Write(body)
	}
	tw.Close()
	b.Logf("bench layer: %d files, %.1f MB of content, %.1f MB tar", files, float64(total)/1e6, float64(buf.Len())/1e6)
	return buf.Bytes()
}

// BenchmarkConvert measures the first conversion of a ~100 MB layer (extract, then
// mkfs.erofs) and reports its ratio to mkfs.erofs alone on the same, already
// extracted, tree.
func BenchmarkConvert(b *testing.B) {
	testenv.RequireRoot(b)
	mkfs := testenv.RequireBinary(b, "mkfs.erofs")
	layer := benchLayer(b)
	s := openStore(b)
	tmp := b.TempDir()
	// The peer reads the same tree from where conversions extract it (the scratch tmpfs).
	work, done, err := lockedDir(s.treeParent(tmp, int64(len(layer))), "hull-tree-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(done)
	tree := filepath.Join(work, "tree")
	os.Mkdir(tree, 0o700)
	if err := extract(bg(), bytes.NewReader(layer), tree, DefaultLimits()); err != nil {
		b.Fatal(err)
	}
	var ours, peer time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(tmp, "ours.erofs")
		t0 := time.Now()
		if err := s.convertFrom(bg(), bytes.NewReader(layer), "", out, s.treeParent(tmp, int64(len(layer)))); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(t0)
		b.StopTimer()
		os.Remove(out)
		t1 := time.Now()
		if out, err := exec.Command(mkfs, "--quiet", "--preserve-mtime", filepath.Join(tmp, "peer.erofs"), tree).CombinedOutput(); err != nil {
			b.Fatalf("mkfs.erofs: %v: %s", err, out)
		}
		peer += time.Since(t1)
		os.Remove(filepath.Join(tmp, "peer.erofs"))
		b.StartTimer()
	}
	b.ReportMetric(float64(ours)/float64(peer), "x-mkfs.erofs")
	b.ReportMetric(float64(len(layer))/1e6/ours.Seconds()*float64(b.N), "MB/s")
}

// BenchmarkDisksCached measures Disks on an image whose layers are already converted:
// it must find the disks and convert nothing (reported: conversions per call, and its
// time as a fraction of the first conversion's).
func BenchmarkDisksCached(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireBinary(b, "mkfs.erofs")
	s := openStore(b)
	file := writeFile(b, filepath.Join(b.TempDir(), "layer.tar"), benchLayer(b))
	t0 := time.Now()
	img, err := s.Import(bg(), file, ImportOptions{Name: "bench:1"})
	if err != nil {
		b.Fatal(err)
	}
	first := time.Since(t0)
	disks, err := s.Disks(bg(), img)
	if err != nil {
		b.Fatal(err)
	}
	st0, _ := os.Stat(disks[0])
	b.ResetTimer()
	t1 := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := s.Disks(bg(), img); err != nil {
			b.Fatal(err)
		}
	}
	again := time.Since(t1) / time.Duration(b.N)
	b.StopTimer()
	st1, _ := os.Stat(disks[0])
	converted := 0.0
	if !os.SameFile(st0, st1) || !st0.ModTime().Equal(st1.ModTime()) {
		converted = 1
	}
	b.ReportMetric(converted, "conversions")
	b.ReportMetric(float64(again)/float64(first), "x-first-import")
}

// BenchmarkLayerFormat compares the two candidate layer disk formats on the ~100 MB
// tree: build time, image size and mount time of mkfs.erofs and of mkfs.ext4 -d.
func BenchmarkLayerFormat(b *testing.B) {
	testenv.RequireLoop(b)
	layer := benchLayer(b)
	tree := filepath.Join(b.TempDir(), "tree")
	os.Mkdir(tree, 0o700)
	if err := extract(bg(), bytes.NewReader(layer), tree, DefaultLimits()); err != nil {
		b.Fatal(err)
	}
	formats := []struct {
		name  string
		fs    string
		build func(out string) *exec.Cmd
	}{
		{"erofs", "erofs", func(out string) *exec.Cmd {
			return exec.Command("mkfs.erofs", "--quiet", "--preserve-mtime", out, tree)
		}},
		{"ext4", "ext4", func(out string) *exec.Cmd {
			size := fmt.Sprint(len(layer)*13/10/1024+16384) + "k"
			return exec.Command("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=0", "-d", tree, out, size)
		}},
	}
	for _, f := range formats {
		b.Run(f.name, func(b *testing.B) {
			testenv.RequireBinary(b, f.build("x").Args[0])
			dir := b.TempDir()
			out := filepath.Join(dir, "disk")
			mp := filepath.Join(dir, "mnt")
			os.Mkdir(mp, 0o755)
			var build, mnt time.Duration
			var size int64
			for i := 0; i < b.N; i++ {
				os.Remove(out)
				t0 := time.Now()
				if o, err := f.build(out).CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, o)
				}
				build += time.Since(t0)
				fi, _ := os.Stat(out)
				size = fi.Size()
				t1 := time.Now()
				if o, err := exec.Command("mount", "-t", f.fs, "-o", "loop,ro", out, mp).CombinedOutput(); err != nil {
					b.Fatalf("mount: %v: %s", err, o)
				}
				mnt += time.Since(t1)
				if o, err := exec.Command("umount", mp).CombinedOutput(); err != nil {
					b.Fatalf("umount: %v: %s", err, o)
				}
			}
			b.ReportMetric(build.Seconds()/float64(b.N), "build-s")
			b.ReportMetric(float64(size)/1e6, "MB")
			b.ReportMetric(float64(mnt.Milliseconds())/float64(b.N), "mount-ms")
		})
	}
}
