package chart

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/hullvm/hull/bench"
)

func report() *bench.Report {
	r := &bench.Report{Host: "test", Runs: 2, Baseline: "runc", Samples: []bench.Sample{
		{Subject: "runc", Metric: "start-to-exit", Unit: "ms", Value: 40, Run: 0},
		{Subject: "hull-container", Metric: "start-to-exit", Unit: "ms", Value: 44, Run: 0},
		{Subject: "runc", Metric: "start-to-exit", Unit: "ms", Value: 60, Run: 1},
		{Subject: "hull-container", Metric: "start-to-exit", Unit: "ms", Value: 56, Run: 1},
	}}
	r.MergeLab(&bench.Report{Runs: 2, Baseline: "hull-vm", LabBaseline: "hull-vm", Samples: []bench.Sample{
		{Subject: "hull-vm", Metric: "start-to-exit", Unit: "ms", Value: 5000, Where: "lab"},
		{Subject: "qemu", Metric: "start-to-exit", Unit: "ms", Value: 9000, Where: "lab"},
	}})
	return r
}

func TestWritesPNGAndSVGWithEverySubject(t *testing.T) {
	dir := t.TempDir()
	paths, err := Write(report(), dir, "chart")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || paths[0] != filepath.Join(dir, "chart.png") || paths[1] != filepath.Join(dir, "chart.svg") {
		t.Fatalf("paths = %v", paths)
	}
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("chart.png does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 300 {
		t.Errorf("chart.png is %v, too small to read", b)
	}
	svg, err := os.ReadFile(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "hull-container", "hull-vm (lab)", "qemu (lab)", "start-to-exit", ">1.8<"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("chart.svg lacks %q", want)
		}
	}
}

func TestNeedsABaseline(t *testing.T) {
	r := &bench.Report{Baseline: "docker", Samples: []bench.Sample{{Subject: "runc", Metric: "m", Value: 1}}}
	dir := t.TempDir()
	if _, err := Write(r, dir, "c"); err == nil {
		t.Fatal("chart without a baseline succeeded")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a failed chart left %d files", len(left))
	}
}
