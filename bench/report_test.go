package bench

import (
	"bytes"
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

func labReport() *Report {
	r := sampleReport()
	r.MergeLab(&Report{Runs: 2, Baseline: "hull-vm", LabBaseline: "hull-vm",
		Missing: []Missing{{Subject: "hull-container", Reason: "host only"}},
		Samples: []Sample{
			{Subject: "hull-vm", Metric: "start-to-exit", Unit: "ms", Value: 5000, Where: "lab"},
			{Subject: "hull-vm", Metric: "start-to-exit", Unit: "ms", Value: 7000, Where: "lab"},
			{Subject: "hull-vmm-boot", Metric: "boot-to-exit", Unit: "ms", Value: 20000, Where: "lab"},
			{Subject: "qemu", Metric: "boot-to-exit", Unit: "ms", Value: 30000, Where: "lab"},
		}})
	return r
}

func TestTableComparesEachPlaceWithItsOwnBaseline(t *testing.T) {
	var b bytes.Buffer
	if err := labReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"vs baseline (same place)", "runc on the host, hull-vm in the lab", "nested KVM lab"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || f[2] != "lab" {
			continue
		}
		// hull-vm's lab start is 6000 against itself; lab times against the host's runc
		// (50 ms) would say 120x.
		if f[1] == "hull-vm" && f[9] != "1.00x" {
			t.Errorf("lab hull-vm ratio %s, want 1.00x: %s", f[9], l)
		}
		if f[0] == "boot-to-exit" && f[9] != "-" {
			t.Errorf("boot-to-exit has no hull-vm figure, ratio should be -: %s", l)
		}
	}
	if strings.Contains(out, "hull-container: in the lab") {
		t.Errorf("the lab's missing hull-container was merged although the host measures it:\n%s", out)
	}
}
