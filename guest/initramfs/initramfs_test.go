package initramfs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/mkuimage/cpio"

	"github.com/hullvm/hull/internal/testenv"
)

func source(t *testing.T) string {
	t.Helper()
	testenv.RequireBinary(t, "go")
	src, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func entries(t *testing.T, path string) map[string]Entry {
	t.Helper()
	es, err := List(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Entry{}
	for _, e := range es {
		m[e.Name] = e
	}
	return m
}

// TestBuildReproducible builds the agent-only initramfs twice from scratch (agent
// included) and checks the two are identical, that /init is the agent, and that a
// third build with the same input reuses the file.
func TestBuildReproducible(t *testing.T) {
	src := source(t)
	ctx := context.Background()
	var results []Result
	for range 2 {
		r, err := Build(ctx, Options{Dir: t.TempDir(), Source: src})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	if results[0].Hash != results[1].Hash || results[0].Size != results[1].Size {
		t.Errorf("two builds differ: %+v and %+v", results[0], results[1])
	}
	r := results[0]
	if filepath.Base(r.Path) != r.Hash[:16]+".cpio.gz" {
		t.Errorf("file %s is not named by its hash %s", r.Path, r.Hash)
	}
	if l, err := os.Readlink(filepath.Join(filepath.Dir(r.Path), "current.cpio.gz")); err != nil || l != filepath.Base(r.Path) {
		t.Errorf("current.cpio.gz -> %q (%v), want %s", l, err, filepath.Base(r.Path))
	}

	m := entries(t, r.Path)
	tests := []struct {
		name string
		mode uint64
	}{
		{"init", cpio.S_IFREG | 0o755},
		{"dev/console", cpio.S_IFCHR | 0o600},
		{"proc", cpio.S_IFDIR | 0o755},
		{"sys", cpio.S_IFDIR | 0o755},
	}
	for _, tc := range tests {
		if e, ok := m[tc.name]; !ok || e.Mode != tc.mode {
			t.Errorf("%s: %+v (present %v), want mode %o", tc.name, e, ok, tc.mode)
		}
	}
	if _, ok := m["bbin/bb"]; ok {
		t.Errorf("agent-only initramfs has the debug tools")
	}

	agent := filepath.Join(t.TempDir(), "hull-init")
	if err := BuildAgent(ctx, src, agent); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(r.Path, "init")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("/init (%d bytes) is not the hull-init build (%d bytes)", len(got), len(want))
	}

	again, err := Build(ctx, Options{Dir: filepath.Dir(r.Path), Agent: agent, Source: src})
	if err != nil || again != r {
		t.Errorf("rebuild from the same agent = %+v, %v; want %+v", again, err, r)
	}
}

func TestBuildDebugShell(t *testing.T) {
	if testenv.Short() {
		t.Skip("builds u-root commands with gobusybox (about 30 s); -short leaves it out")
	}
	src := source(t)
	r, err := Build(context.Background(), Options{Dir: t.TempDir(), Source: src, DebugShell: true})
	if err != nil {
		t.Fatal(err)
	}
	m := entries(t, r.Path)
	if e := m["bbin/bb"]; e.Mode != cpio.S_IFREG|0o755 || e.Size == 0 {
		t.Errorf("bbin/bb = %+v, want the gobusybox binary", e)
	}
	for _, c := range []string{"gosh", "ls", "cat", "mount", "dmesg", "ps"} {
		if e := m["bbin/"+c]; e.Mode&cpio.S_IFMT != cpio.S_IFLNK || e.Link != "bb" {
			t.Errorf("bbin/%s = %+v, want a symlink to bb", c, e)
		}
	}
	if e := m["init"]; e.Mode != cpio.S_IFREG|0o755 {
		t.Errorf("init = %+v, want the agent", e)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		o  Options
		ok bool
	}{
		{Options{Dir: "d", Source: "s"}, true},
		{Options{Dir: "d", Agent: "a"}, true},
		{Options{Source: "s"}, false},
		{Options{Dir: "d"}, false},
	}
	for _, tc := range tests {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v", tc.o, err)
		}
	}
}
