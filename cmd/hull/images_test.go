package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullvm/hull/internal/testenv"
)

// hullRun runs the CLI in-process and returns its exit status and output.
func hullRun(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

// TestImageCommands walks import, images, tag, inspect, rmi and prune through the CLI.
func TestImageCommands(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "mkfs.erofs")
	root := filepath.Join(t.TempDir(), "state")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	os.WriteFile(rootfs, buf.Bytes(), 0o644)

	steps := []struct {
		args []string
		code int
		out  string // substring of stdout
		err  string // substring of stderr
	}{
		{[]string{"import", "-c", "CMD [\"/hello\"]", rootfs, "demo:1"}, 0, "sha256:", ""},
		{[]string{"images"}, 0, "demo ", ""},
		{[]string{"tag", "demo:1", "other"}, 0, "", ""},
		{[]string{"images", "--json", "other"}, 0, `"tag": "latest"`, ""},
		{[]string{"image", "inspect", "--disks", "other"}, 0, ".erofs", ""},
		{[]string{"image", "inspect", "missing"}, 125, "[]", "hull pull missing"},
		{[]string{"rmi", "demo:1"}, 0, "Untagged: demo:1", ""},
		{[]string{"rmi", "other"}, 0, "Deleted: sha256:", ""},
		{[]string{"images", "-q"}, 0, "", ""},
		{[]string{"image", "prune"}, 0, "Total reclaimed space", ""},
		{[]string{"load", "-i", rootfs}, 125, "", "neither a docker save tarball nor an OCI image layout"},
		{[]string{"pull"}, 125, "", "accepts 1 arg"},
	}
	for _, s := range steps {
		code, out, errs := hullRun(t, "", append([]string{"--root", root}, s.args...)...)
		if code != s.code || !strings.Contains(out, s.out) || !strings.Contains(errs, s.err) {
			t.Errorf("hull %s: status %d, stdout %q, stderr %q; want %d, %q, %q", strings.Join(s.args, " "), code, out, errs, s.code, s.out, s.err)
		}
	}
	if code, out, errs := hullRun(t, buf.String(), "--root", root, "import", "-", "stdin:1"); code != 0 || !strings.HasPrefix(out, "sha256:") {
		t.Errorf("hull import - stdin:1: status %d, %q, %q", code, out, errs)
	}
	hullRun(t, "", "--root", root, "rmi", "stdin:1")
	_, out, _ := hullRun(t, "", "--root", root, "images", "--json")
	var rows []imageRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 0 {
		t.Errorf("images --json after removing everything: %q (%v)", out, err)
	}
}
