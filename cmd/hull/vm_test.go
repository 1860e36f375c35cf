package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hullvm/hull/vmm"
)

func TestParseMiB(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"256M", 256, true},
		{"256m", 256, true},
		{"512MiB", 512, true},
		{"1G", 1024, true},
		{"2gb", 2048, true},
		{"64", 64, true},
		{"65536k", 64, true},
		{"268435456b", 256, true},
		{"1000k", 0, false},
		{"0", 0, false},
		{"", 0, false},
		{"-1G", 0, false},
		{"lots", 0, false},
		{"99999999999999G", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseMiB(tc.in)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("parseMiB(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseDisk(t *testing.T) {
	tests := []struct {
		in   string
		want vmm.Disk
		ok   bool
	}{
		{"a.img", vmm.Disk{Path: "a.img"}, true},
		{"a.img,ro", vmm.Disk{Path: "a.img", ReadOnly: true}, true},
		{"a.img,id=root,ro", vmm.Disk{Path: "a.img", ID: "root", ReadOnly: true}, true},
		{"a.img,id=root", vmm.Disk{Path: "a.img", ID: "root"}, true},
		{",ro", vmm.Disk{}, false},
		{"a.img,bogus", vmm.Disk{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDisk(tc.in)
			if tc.ok != (err == nil) || (err == nil && got != tc.want) {
				t.Fatalf("parseDisk(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestVMRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"bad memory", []string{"vm", "run", "--kernel", "k", "--memory", "lots"}, "--memory"},
		{"bad disk", []string{"vm", "run", "--kernel", "k", "--disk", "x,bogus"}, "--disk"},
		{"missing kernel file", []string{"vm", "run", "--kernel", "/nonexistent/bzImage"}, "kernel"},
		{"no cached kernel", []string{"--cache", "/nonexistent", "vm", "run"}, "guest kernel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
			if code != exitHull || !strings.Contains(errb.String(), tc.msg) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q", code, errb.String(), exitHull, tc.msg)
			}
		})
	}
}

func TestEscapeReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		stopped bool
	}{
		{"plain", "ls -l\r", "ls -l\r", false},
		{"ctrl-a x stops", "abc\x01xdef", "abc", true},
		{"ctrl-a ctrl-a sends one", "a\x01\x01b", "a\x01b", false},
		{"ctrl-a other sends it", "a\x01cb", "acb", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stopped := false
			r := &escapeReader{r: iotest.OneByteReader(strings.NewReader(tc.in)), stop: func() { stopped = true }}
			got, err := io.ReadAll(r)
			if err != nil || string(got) != tc.want || stopped != tc.stopped {
				t.Fatalf("read %q, %v, stopped %v; want %q, stopped %v", got, err, stopped, tc.want, tc.stopped)
			}
		})
	}
}
