package images

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtract feeds arbitrary bytes to the layer extractor: it must never panic, hang or
// write outside its tree, whatever it accepts or refuses.
func FuzzExtract(f *testing.F) {
	seeds := [][]byte{
		tarOf(f, ent{name: "etc/", typ: tar.TypeDir}, ent{name: "etc/passwd", body: "root:x:0:0\n"}),
		tarOf(f, ent{name: "a/b/c", body: "x"}, ent{name: "a/.wh.b"}, ent{name: "a/.wh..wh..opq"}),
		tarOf(f, ent{name: "t", body: "x"}, ent{name: "h", typ: tar.TypeLink, link: "t"}, ent{name: "s", typ: tar.TypeSymlink, link: "/etc"}),
		tarOf(f, ent{name: "s", typ: tar.TypeSymlink, link: ".."}, ent{name: "s/x", body: "x"}),
		tarOf(f, ent{name: "../x", body: "x"}),
		tarOf(f, ent{name: "d", typ: tar.TypeDir}, ent{name: "d", body: "file replaces dir"}, ent{name: "d/x", body: "x"}),
		tarOf(f, ent{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3}, ent{name: "p", typ: tar.TypeFifo}),
		tarOf(f, ent{name: "x", body: "x", xattrs: map[string]string{"user.a": "b", "trusted.overlay.opaque": "y"}}),
		tarOf(f, ent{name: "big", body: "x", size: 1 << 30}),
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		tree := filepath.Join(root, "tree")
		if err := os.Mkdir(tree, 0o700); err != nil {
			t.Fatal(err)
		}
		_ = extract(bg(), bytes.NewReader(data), tree, Limits{MaxBytes: 1 << 20, MaxEntries: 256})
		ents, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "tree" {
			t.Fatalf("extract wrote beside its tree: %v", ents)
		}
	})
}

// FuzzArchive feeds arbitrary bytes to the docker save / OCI archive reader (tar index,
// manifest.json, index.json, nested indexes, manifests): errors, never panics.
func FuzzArchive(f *testing.F) {
	layer := tarOf(f, ent{name: "hello", body: "world"})
	cfg := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("0", 64) + `"]}}`
	f.Add(tarOf(f,
		ent{name: "c.json", body: cfg},
		ent{name: "l/layer.tar", body: string(layer)},
		ent{name: "manifest.json", body: `[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l/layer.tar"]}]`}))
	f.Add(tarOf(f,
		ent{name: "index.json", body: `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2}]}`},
		ent{name: "blobs/sha256/" + strings.Repeat("a", 64), body: "{}"}))
	f.Add(tarOf(f, ent{name: "manifest.json", body: `[{"Config":"../x","Layers":["/etc/passwd"]}]`}))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "a.tar")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		a, err := openTarArchive(fh)
		if err != nil {
			return
		}
		cs, err := candidates(bg(), a, p)
		if err != nil {
			return
		}
		for _, c := range cs {
			parseManifest(c.manifest)
		}
	})
}
