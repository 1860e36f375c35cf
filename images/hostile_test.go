package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullvm/hull/internal/testenv"
)

// TestHostileLayers imports root filesystem tarballs that try to escape or lie, and
// checks each is refused naming the image and the entry, that nothing lands outside
// the store, and that no image is registered.
func TestHostileLayers(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "mkfs.erofs")
	outside := filepath.Join(t.TempDir(), "outside")
	valid := tarOf(t, ent{name: "etc/", typ: tar.TypeDir}, ent{name: "etc/hostname", body: strings.Repeat("hull\n", 4000)})
	gz := gzipOf(t, valid)
	corrupt := append([]byte(nil), gz...)
	for i := len(corrupt) / 2; i < len(corrupt)/2+16; i++ {
		corrupt[i] ^= 0x5a
	}
	tests := []struct {
		name  string
		layer []byte
		entry string // must appear in the error
		want  string // and so must this
	}{
		{"dotdot", tarOf(t, ent{name: "../outside/pwned", body: "x"}), "../outside/pwned", "escapes the layer root"},
		{"dotdot-inner", tarOf(t, ent{name: "a/../../outside/pwned", body: "x"}), "a/../../outside/pwned", "escapes the layer root"},
		{"absolute", tarOf(t, ent{name: outside + "/pwned", body: "x"}), outside + "/pwned", "absolute path"},
		{"symlink-write", tarOf(t,
			ent{name: "evil", typ: tar.TypeSymlink, link: outside},
			ent{name: "evil/pwned", body: "x"}), "evil/pwned", "goes through a symlink"},
		{"symlink-relative-write", tarOf(t,
			ent{name: "a/", typ: tar.TypeDir},
			ent{name: "a/up", typ: tar.TypeSymlink, link: "../../../../../../../.."},
			ent{name: "a/up/tmp/pwned", body: "x"}), "a/up/tmp/pwned", "goes through a symlink"},
		{"symlink-dir-then-mkdir", tarOf(t,
			ent{name: "d", typ: tar.TypeSymlink, link: outside},
			ent{name: "d/sub/", typ: tar.TypeDir}), "d/sub/", "goes through a symlink"},
		{"hardlink-outside", tarOf(t, ent{name: "h", typ: tar.TypeLink, link: "../../../../etc/passwd"}), `"h"`, "escapes the layer root"},
		{"hardlink-absolute", tarOf(t, ent{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}), `"h"`, "absolute path"},
		{"hardlink-through-symlink", tarOf(t,
			ent{name: "s", typ: tar.TypeSymlink, link: "/etc"},
			ent{name: "h", typ: tar.TypeLink, link: "s/passwd"}), `"h"`, "goes through a symlink"},
		{"hardlink-missing", tarOf(t, ent{name: "h", typ: tar.TypeLink, link: "nowhere"}), `"h"`, "not in this layer"},
		{"oversized-size", tarOf(t, ent{name: "big", body: "only a little", size: 1 << 40}), `"big"`, "exceeds the layer limit"},
		{"truncated-body", tarOf(t, ent{name: "cut", body: "only a little", size: 1 << 20}), `"cut"`, "content"},
		{"oversized-header", bigPAX(t, 2<<20), "tar entry 0", "header"},
		{"overlay-xattr", tarOf(t, ent{name: "d/", typ: tar.TypeDir, xattrs: map[string]string{"trusted.overlay.redirect": "/etc"}}), `"d/"`, "reserved for overlayfs"},
		{"whiteout-dotdot", tarOf(t, ent{name: "a/.wh..."}), `"a/.wh..."`, "whiteout"},
		{"truncated-gzip", gz[:len(gz)/2], "rootfs.tar", "unexpected EOF"},
		{"corrupt-gzip", corrupt, "rootfs.tar", "gzip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.MkdirAll(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, WithLimits(Limits{MaxBytes: 1 << 30, MaxEntries: 1000}))
			file := writeFile(t, filepath.Join(t.TempDir(), "rootfs.tar"), tc.layer)
			name := "evil:" + tc.name
			_, err := s.Import(bg(), file, ImportOptions{Name: name})
			checkRefused(t, s, err, name, tc.entry, tc.want)
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("%s has %d entries after the import, want none", outside, len(ents))
			}
		})
	}
}

// checkRefused checks a refusal: ErrInvalid, a message naming the image and what was
// wrong, no image registered, no work files left.
func checkRefused(t *testing.T, s *Store, err error, name string, parts ...string) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	for _, p := range append([]string{name}, parts...) {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
	if _, gerr := s.Get(bg(), name); !errors.Is(gerr, ErrNotFound) {
		t.Errorf("Get(%s) after refusal: %v, want ErrNotFound", name, gerr)
	}
	if l, _ := s.List(bg()); len(l) != 0 {
		t.Errorf("store lists %d images after a refusal, want 0", len(l))
	}
	for _, d := range []string{filepath.Join(s.dir, "tmp"), s.layers} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("%s holds %d entries after a refusal, want none", d, len(ents))
		}
	}
}

// TestLyingManifests loads OCI layouts whose digests or sizes do not match their blobs.
func TestLyingManifests(t *testing.T) {
	testenv.RequireRoot(t)
	layer := tarOf(t, ent{name: "hello", body: "world"})
	other := digest.FromString("something else")
	tests := []struct {
		name string
		o    layoutOpts
		want string
	}{
		{"layer-digest", layoutOpts{fixMan: func(m *ocispec.Manifest) {
			m.Layers[0].Digest = other
		}}, "layer 0"},
		{"layer-size", layoutOpts{fixMan: func(m *ocispec.Manifest) { m.Layers[0].Size-- }}, "manifest says"},
		{"config-digest", layoutOpts{fixMan: func(m *ocispec.Manifest) { m.Config.Size++ }}, "config"},
		{"diffid", layoutOpts{fixConfig: func(c *ocispec.Image) { c.RootFS.DiffIDs[0] = other }}, "diffID"},
		{"diffid-count", layoutOpts{fixConfig: func(c *ocispec.Image) { c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, other) }}, "diffIDs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.name = "liar:" + tc.name
			dir := writeLayout(t, t.TempDir(), tc.o, layer)
			if tc.name == "layer-digest" { // the blob is there under the false name too
				writeFile(t, filepath.Join(dir, "blobs", "sha256", other.Encoded()), layer)
			}
			s := openStore(t)
			_, err := s.Load(bg(), dir)
			checkRefused(t, s, err, tc.o.name, tc.want)
		})
	}
}

// bigPAX writes a tarball whose first entry is a PAX extended header of n bytes, more
// than any reader should accept, followed by a small file.
func bigPAX(t *testing.T, n int) []byte {
	t.Helper()
	rec := " user.big=" + strings.Repeat("A", n) + "\n"
	d := len(fmt.Sprint(len(rec))) // the length counts its own digits
	if len(fmt.Sprint(len(rec)+d)) > d {
		d++
	}
	rec = fmt.Sprint(len(rec)+d) + rec
	hdr := tarOf(t, ent{name: "PaxHeaders/x", body: rec})[:512]
	hdr[156] = tar.TypeXHeader
	copy(hdr[148:156], "        ")
	sum := 0
	for _, b := range hdr {
		sum += int(b)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	body := append([]byte(rec), make([]byte, (512-len(rec)%512)%512)...)
	return append(append(hdr, body...), tarOf(t, ent{name: "x", body: "x"})...)
}
