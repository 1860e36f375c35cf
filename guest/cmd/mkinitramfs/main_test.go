package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullvm/hull/guest/initramfs"
	"github.com/hullvm/hull/internal/testenv"
)

func TestRun(t *testing.T) {
	testenv.RequireBinary(t, "go")
	src, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(t.TempDir(), "hull-init")
	if err := initramfs.BuildAgent(context.Background(), src, agent); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--cache", cacheDir, "--agent", agent, "--source", src, "--json"}, &out, &errb); err != nil {
		t.Fatalf("run: %v\n%s", err, errb.String())
	}
	var res struct {
		Path string `json:"path"`
		Hash string `json:"hash"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	cur, err := filepath.EvalSymlinks(filepath.Join(cacheDir, "initramfs", "current.cpio.gz"))
	if err != nil || cur != res.Path || !strings.HasPrefix(filepath.Base(res.Path), res.Hash[:16]) {
		t.Errorf("current.cpio.gz -> %q (%v), result %+v", cur, err, res)
	}
	if _, err := os.Stat(res.Path); err != nil {
		t.Error(err)
	}
}

func TestRunBadFlags(t *testing.T) {
	tests := [][]string{{"--nope"}, {"extra-arg"}}
	for _, args := range tests {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
