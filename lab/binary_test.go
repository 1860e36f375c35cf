package lab

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseLdd(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007ffd5b3e5000)
	libext2fs.so.2 => /lib/x86_64-linux-gnu/libext2fs.so.2 (0x00007f2b1c0a4000)
	libmissing.so.1 => not found
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2b1bec0000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f2b1c146000)
`
	got := ParseLdd(out)
	want := []string{"/lib/x86_64-linux-gnu/libext2fs.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestAddBinary(t *testing.T) {
	p := map[string]string{}
	if err := AddBinary(p, "/bin/ls", "/usr/bin/ls"); err != nil {
		t.Fatal(err)
	}
	if p["/usr/bin/ls"] != "/bin/ls" {
		t.Fatalf("program not added: %v", p)
	}
	var loader bool
	for k := range p {
		loader = loader || k == "/lib64/ld-linux-x86-64.so.2"
	}
	if !loader {
		t.Fatalf("dynamic loader not added: %v", p)
	}
	static := map[string]string{}
	if err := AddBinary(static, "/bin/busybox", "/usr/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	if len(static) != 1 {
		t.Fatalf("a static program brought libraries: %v", static)
	}
}

func TestAddTree(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a", "sub/b", "sub/deeper/c"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	payload := map[string]string{}
	if err := AddTree(payload, dir, "cache/img"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cache/img/a":            filepath.Join(dir, "a"),
		"cache/img/sub/b":        filepath.Join(dir, "sub/b"),
		"cache/img/sub/deeper/c": filepath.Join(dir, "sub/deeper/c"),
	}
	if !maps.Equal(payload, want) {
		t.Errorf("payload %v, want %v (regular files only)", payload, want)
	}
	if err := AddTree(payload, filepath.Join(dir, "missing"), "x"); err == nil {
		t.Error("AddTree of a missing folder succeeded")
	}
}
