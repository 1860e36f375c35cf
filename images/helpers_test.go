package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/internal/testenv"
)

// ent is one tar entry a test writes.
type ent struct {
	name   string
	typ    byte // tar.TypeReg when zero
	body   string
	link   string
	mode   int64
	uid    int
	gid    int
	major  int64
	minor  int64
	xattrs map[string]string
	size   int64 // overrides len(body) in the header when non-zero
}

var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// tarOf writes entries as a tarball; a header size larger than the body leaves the
// archive truncated on purpose.
func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Devmajor: e.major, Devminor: e.minor, ModTime: epoch, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.size != 0 {
			h.Size = e.size
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil && e.size == 0 {
				t.Fatalf("tar body %s: %v", e.name, err)
			}
		}
		if e.size != 0 {
			return buf.Bytes() // truncated: no more entries, no trailer
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("tar close: %v", err)
	}
	return buf.Bytes()
}

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	z.Write(b)
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layout writes an OCI image layout holding one image made of the given layer blobs
// (plain or compressed tarballs) and returns its directory. fix may corrupt the manifest
// or config before they are written.
type layoutOpts struct {
	name      string
	fixConfig func(*ocispec.Image)
	fixMan    func(*ocispec.Manifest)
}

func writeLayout(t testing.TB, dir string, o layoutOpts, layers ...[]byte) string {
	t.Helper()
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	created := epoch
	cfg := ocispec.Image{Created: &created, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}}, RootFS: ocispec.RootFS{Type: "layers"}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		_, diff, err := uncompressedDigest(bytes.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diff)
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mediaTypeOf(l), Digest: put(l), Size: int64(len(l))})
	}
	if o.fixConfig != nil {
		o.fixConfig(&cfg)
	}
	cb, _ := json.Marshal(cfg)
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: put(cb), Size: int64(len(cb))}
	if o.fixMan != nil {
		o.fixMan(&m)
	}
	mb, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: put(mb), Size: int64(len(mb))}
	if o.name != "" {
		md.Annotations = map[string]string{ocispec.AnnotationRefName: o.name}
	}
	ib, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t testing.TB, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mountImage loop-mounts each layer disk read-only and stacks them with overlayfs
// (an empty directory under the lowest when there is one layer: overlayfs needs two
// lower directories without an upper one). Everything is unmounted in Cleanup.
func mountImage(t *testing.T, disks []string) string {
	t.Helper()
	testenv.RequireLoop(t)
	base := t.TempDir()
	var lowers []string
	for i, d := range disks {
		mp := filepath.Join(base, fmt.Sprintf("l%d", i))
		mount(t, mp, "mount", "-t", "erofs", "-o", "loop,ro,nodev", d, mp)
		lowers = append([]string{mp}, lowers...) // overlayfs lists the top first
	}
	if len(lowers) == 1 {
		empty := filepath.Join(base, "empty")
		os.Mkdir(empty, 0o755)
		lowers = append(lowers, empty)
	}
	merged := filepath.Join(base, "merged")
	mount(t, merged, "mount", "-t", "overlay", "overlay", "-o", "lowerdir="+strings.Join(lowers, ":"), merged)
	return merged
}

func mount(t *testing.T, mp string, args ...string) {
	t.Helper()
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	t.Cleanup(func() {
		// mount -o loop sets autoclear: the loop device goes with the unmount.
		if out, err := exec.Command("umount", mp).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mp, err, out)
		}
	})
}

// treeOf describes every entry under dir, one line each: type, mode, owner, and the
// content, link target, device number or xattrs that matter.
func treeOf(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			line = "d " + line
		case unix.S_IFREG:
			b, _ := os.ReadFile(p)
			line = fmt.Sprintf("f %s %q n%d", line, b, st.Nlink)
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			line = "l " + line + " -> " + l
		case unix.S_IFCHR:
			line = fmt.Sprintf("c %s %d/%d", line, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFBLK:
			line = fmt.Sprintf("b %s %d/%d", line, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			line = "p " + line
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			if v, err := getxattr(p, "user.note"); err == nil {
				line += " user.note=" + v
			}
			if v, err := getxattr(p, xattrOpaque); err == nil {
				line += " opaque=" + v
			}
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Sort by path, which follows the type letter.
	sort.Slice(out, func(i, j int) bool { return out[i][2:] < out[j][2:] })
	return out
}

func getxattr(p, name string) (string, error) {
	b := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, b)
	if err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

func bg() context.Context { return context.Background() }
