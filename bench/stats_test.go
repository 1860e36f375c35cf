package bench

import (
	"math"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7, 7, 1, 100, 7}, 7},
	}
	for _, tc := range tests {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestMedianDoesNotReorderInput(t *testing.T) {
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Fatalf("input reordered: %v", in)
	}
}

func TestSummarizeRatiosAgainstBaseline(t *testing.T) {
	samples := []Sample{
		{Subject: "runc", Metric: "start", Unit: "ms", Value: 40},
		{Subject: "hull", Metric: "start", Unit: "ms", Value: 50},
		{Subject: "runc", Metric: "start", Unit: "ms", Value: 60},
		{Subject: "hull", Metric: "start", Unit: "ms", Value: 70},
		{Subject: "runc", Metric: "start", Unit: "ms", Value: 50},
		{Subject: "hull", Metric: "start", Unit: "ms", Value: 90},
		{Subject: "hull", Metric: "rss", Unit: "MiB", Value: 3},
	}
	got := Summarize(samples, map[string]string{"host": "runc"})
	if len(got) != 3 {
		t.Fatalf("got %d summaries, want 3: %+v", len(got), got)
	}
	runc, hull, rss := got[0], got[1], got[2]
	if runc.Subject != "runc" || runc.Median != 50 || runc.Min != 40 || runc.Max != 60 || runc.Ratio != 1 || runc.N != 3 {
		t.Errorf("runc summary %+v", runc)
	}
	if hull.Subject != "hull" || hull.Median != 70 || hull.Ratio != 1.4 {
		t.Errorf("hull summary %+v", hull)
	}
	if rss.Metric != "rss" || !math.IsNaN(rss.Ratio) {
		t.Errorf("a metric without a baseline has ratio %v, want NaN", rss.Ratio)
	}
}

func TestSummarizeRatiosPerPlace(t *testing.T) {
	samples := []Sample{
		{Subject: "runc", Metric: "start", Unit: "ms", Value: 10},
		{Subject: "hull-container", Metric: "start", Unit: "ms", Value: 12, Where: "host"},
		{Subject: "hull-vm", Metric: "start", Unit: "ms", Value: 4000, Where: "lab"},
		{Subject: "hull-vm", Metric: "start", Unit: "ms", Value: 6000, Where: "lab"},
		{Subject: "qemu", Metric: "boot", Unit: "ms", Value: 9000, Where: "lab"},
		{Subject: "hull-vmm-boot", Metric: "boot", Unit: "ms", Value: 6000, Where: "lab"},
		{Subject: "hull-vm", Metric: "rss", Unit: "MiB", Value: 30, Where: "lab"},
		// The same subject name in both places stays two rows.
		{Subject: "hull-vm", Metric: "start", Unit: "ms", Value: 20, Where: "host"},
	}
	tests := []struct {
		name      string
		baselines map[string]string
		want      map[[3]string]float64 // (subject, metric, where) -> ratio; NaN for none
	}{
		{"host and lab baselines", map[string]string{"host": "runc", "lab": "hull-vm"}, map[[3]string]float64{
			{"runc", "start", "host"}:           1,
			{"hull-container", "start", "host"}: 1.2,
			{"hull-vm", "start", "host"}:        2,
			{"hull-vm", "start", "lab"}:         1,
			{"qemu", "boot", "lab"}:             math.NaN(), // hull-vm has no boot figure
			{"hull-vmm-boot", "boot", "lab"}:    math.NaN(),
			{"hull-vm", "rss", "lab"}:           1,
		}},
		{"lab baseline of the boot pair", map[string]string{"host": "runc", "lab": "hull-vmm-boot"}, map[[3]string]float64{
			{"hull-vm", "start", "lab"}:         math.NaN(),
			{"qemu", "boot", "lab"}:             1.5,
			{"hull-vmm-boot", "boot", "lab"}:    1,
			{"hull-container", "start", "host"}: 1.2,
		}},
		{"no lab baseline: lab rows never divided by host figures", map[string]string{"host": "hull-vm"}, map[[3]string]float64{
			{"hull-vm", "start", "lab"}:  math.NaN(),
			{"hull-vm", "start", "host"}: 1,
			{"runc", "start", "host"}:    0.5,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[[3]string]Summary{}
			for _, s := range Summarize(samples, tc.baselines) {
				k := [3]string{s.Subject, s.Metric, s.Where}
				if _, dup := got[k]; dup {
					t.Errorf("two summaries for %v", k)
				}
				got[k] = s
			}
			if len(got) != 7 {
				t.Errorf("got %d summaries, want 7 (one per subject, metric and place): %+v", len(got), got)
			}
			for k, want := range tc.want {
				s, ok := got[k]
				switch {
				case !ok:
					t.Errorf("no summary for %v", k)
				case math.IsNaN(want) != math.IsNaN(s.Ratio) || (!math.IsNaN(want) && math.Abs(s.Ratio-want) > 1e-9):
					t.Errorf("%v ratio %v, want %v", k, s.Ratio, want)
				}
			}
			if lab := got[[3]string{"hull-vm", "start", "lab"}]; lab.N != 2 || lab.Median != 5000 {
				t.Errorf("lab hull-vm start summary %+v, want n 2 median 5000", lab)
			}
		})
	}
}

func TestPlace(t *testing.T) {
	for in, want := range map[string]string{"": "host", "host": "host", "lab": "lab"} {
		if got := Place(in); got != want {
			t.Errorf("Place(%q) = %q, want %q", in, got, want)
		}
	}
}
