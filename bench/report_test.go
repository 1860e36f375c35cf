package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleReport() *Report {
	return &Report{Host: "test", Runs: 2, Baseline: "runc",
		Missing: []Missing{{Subject: "docker", Reason: "dockerd not running"}},
		Samples: []Sample{
			{Subject: "runc", Metric: "start-to-exit", Unit: "ms", Value: 40, Run: 0},
			{Subject: "hull-container", Metric: "start-to-exit", Unit: "ms", Value: 44, Run: 0},
			{Subject: "runc", Metric: "start-to-exit", Unit: "ms", Value: 60, Run: 1},
			{Subject: "hull-container", Metric: "start-to-exit", Unit: "ms", Value: 56, Run: 1},
		}}
}

func TestTableShowsMediansRatiosAndMissingPeers(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"hull-container", "50.0", "1.00x", "missing: docker: dockerd not running"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	var b bytes.Buffer
	r := sampleReport()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Samples) != len(r.Samples) || got.Samples[3] != r.Samples[3] || got.Missing[0] != r.Missing[0] {
		t.Fatalf("round trip changed the report: %+v", got)
	}
}

func TestChartWritesPNGAndSVG(t *testing.T) {
	dir := t.TempDir()
	paths, err := sampleReport().WriteChart(dir, "chart")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("paths = %v", paths)
	}
	png, err := os.ReadFile(filepath.Join(dir, "chart.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("chart.png is not a PNG: %v", err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "chart.svg"))
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("hull-container")) {
		t.Fatalf("chart.svg lacks the subjects: %v", err)
	}
}

func TestChartNeedsABaseline(t *testing.T) {
	r := &Report{Baseline: "docker", Samples: []Sample{{Subject: "runc", Metric: "m", Value: 1}}}
	if _, err := r.WriteChart(t.TempDir(), "c"); err == nil {
		t.Fatal("chart without a baseline succeeded")
	}
}
