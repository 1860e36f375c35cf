package bench

import (
	"context"
	"io"
	"slices"
	"testing"

	"github.com/hullvm/hull/internal/testenv"
)

func TestParseWorkload(t *testing.T) {
	out := "runc chatter\n{\"metric\":\"getpid\",\"unit\":\"ns/op\",\"value\":120.5}\n\n{\"metric\":\"read-root\",\"unit\":\"MB/s\",\"value\":900}\n"
	ss, err := ParseWorkload(out, "runc", "host", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []Sample{
		{Subject: "runc", Metric: "getpid", Unit: "ns/op", Value: 120.5, Run: 2, Where: "host"},
		{Subject: "runc", Metric: "read-root", Unit: "MB/s", Value: 900, Run: 2, Where: "host"},
	}
	if !slices.Equal(ss, want) {
		t.Fatalf("got %+v\nwant %+v", ss, want)
	}
	for _, bad := range []string{`{"metric":"x"}`, `{"unit":"ms","value":1}`, `{"metric":`} {
		if _, err := ParseWorkload(bad, "s", "host", 0); err == nil {
			t.Errorf("ParseWorkload(%q) accepted", bad)
		}
	}
}

func TestParseDockerPID(t *testing.T) {
	if pid, err := ParseDockerPID("4242\n"); err != nil || pid != 4242 {
		t.Fatalf("got %d, %v", pid, err)
	}
	for _, bad := range []string{"0\n", "", "<no value>"} {
		if _, err := ParseDockerPID(bad); err == nil {
			t.Errorf("ParseDockerPID(%q) accepted", bad)
		}
	}
}

func TestParseMemAvailable(t *testing.T) {
	v, err := ParseMemAvailable("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n")
	if err != nil || v != 2048 {
		t.Fatalf("got %d, %v", v, err)
	}
	if _, err := ParseMemAvailable("MemTotal: 1 kB\n"); err == nil {
		t.Fatal("meminfo without MemAvailable accepted")
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Hull: "h", Root: "r", Busybox: "b", Work: "w", Runs: 1, Modes: []string{"container"}, Peers: []string{"runc"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Config{ok, ok, ok}
	bad[0].Runs = 0
	bad[1].Modes = []string{"kvm"}
	bad[2].Peers = []string{"lxc"}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d accepted: %+v", i, c)
		}
	}
}

// TestRuncRound runs one real round against runc: every figure of a round is there.
func TestRuncRound(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "runc")
	busybox := testenv.RequireBinary(t, "busybox")
	dir := t.TempDir()
	r, err := Run(context.Background(), Config{Hull: "unused", Root: dir, Busybox: busybox, Work: dir,
		Peers: []string{"runc"}, Runs: 1, Density: 2, FileMB: 2, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range r.Samples {
		if s.Subject != "runc" || s.Value <= 0 {
			t.Errorf("sample %+v", s)
		}
		got[s.Metric] = true
	}
	for _, m := range []string{"start-to-first-output", "start-to-exit", "getpid", "open-close",
		"write+fsync-root", "read-root", "write+fsync-volume", "read-volume", "fsync-4k-volume", "rss", "pss", "density-per-instance"} {
		if !got[m] {
			t.Errorf("no %s sample", m)
		}
	}
	if r.Baseline != "runc" {
		t.Errorf("baseline %q", r.Baseline)
	}
}
