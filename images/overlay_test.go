package images

import (
	"archive/tar"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hullvm/hull/internal/testenv"
)

// TestLayeredImageMounts builds a two-layer image whose upper layer deletes a file and
// makes a directory opaque, loads it from an OCI layout, and checks that the overlay of
// its layer disks shows exactly the expected tree, with owners, modes, xattrs, hard
// links, symlinks and device nodes intact.
func TestLayeredImageMounts(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "mkfs.erofs")
	lower := tarOf(t,
		ent{name: "etc/", typ: tar.TypeDir},
		ent{name: "etc/passwd", body: "root:x:0:0::/root:/bin/sh\n"},
		ent{name: "etc/gone", body: "deleted above"},
		ent{name: "var/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "var/old", body: "hidden by opaque"},
		ent{name: "var/sub/deep", body: "hidden too"},
		ent{name: "home/user/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		ent{name: "home/user/.profile", body: "export A=1\n", mode: 0o600, uid: 1000, gid: 1000, xattrs: map[string]string{"user.note": "kept"}},
		ent{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755},
		ent{name: "bin/alias", typ: tar.TypeLink, link: "bin/tool"},
		ent{name: "bin/sym", typ: tar.TypeSymlink, link: "tool"},
		ent{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		ent{name: "dev/loop9", typ: tar.TypeBlock, major: 7, minor: 9, mode: 0o660},
		ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
	)
	upper := tarOf(t,
		ent{name: "etc/.wh.gone"},
		ent{name: "var/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "var/.wh..wh..opq"},
		ent{name: "var/new", body: "only this"},
		ent{name: "bin/sym", typ: tar.TypeSymlink, link: "/bin/tool"},
	)
	dir := writeLayout(t, t.TempDir(), layoutOpts{name: "layered:v1"}, gzipOf(t, lower), upper)
	s := openStore(t)
	imgs, err := s.Load(bg(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || !slices.Equal(imgs[0].Names, []string{"layered:v1"}) {
		t.Fatalf("loaded %+v, want one image named layered:v1", imgs)
	}
	img, err := s.Get(bg(), "layered:v1")
	if err != nil {
		t.Fatal(err)
	}
	disks, err := s.Disks(bg(), img)
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != 2 || filepath.Dir(disks[0]) != filepath.Join(s.Root(), "layers") {
		t.Fatalf("disks %v: want two under %s/layers", disks, s.Root())
	}
	got := treeOf(t, mountImage(t, disks))
	want := []string{
		"d bin 755 0:0",
		`f bin/alias 4755 0:0 "#!/bin/sh\n" n2`,
		"l bin/sym 777 0:0 -> /bin/tool",
		`f bin/tool 4755 0:0 "#!/bin/sh\n" n2`,
		"d dev 755 0:0",
		"b dev/loop9 660 0:0 7/9",
		"c dev/null 666 0:0 1/3",
		"d etc 755 0:0",
		`f etc/passwd 644 0:0 "root:x:0:0::/root:/bin/sh\n" n1`,
		"d home 755 0:0",
		"d home/user 700 1000:1000",
		`f home/user/.profile 600 1000:1000 "export A=1\n" n1 user.note=kept`,
		"d run 755 0:0",
		"p run/fifo 600 0:0",
		"d var 1777 0:0",
		`f var/new 644 0:0 "only this" n1`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("merged tree:\n%s\nwant:\n%s", join(got), join(want))
	}
}

func join(l []string) string {
	s := ""
	for _, x := range l {
		s += "  " + x + "\n"
	}
	return s
}
