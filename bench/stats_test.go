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
	got := Summarize(samples, "runc")
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
