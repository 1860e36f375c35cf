package bench

import (
	"math"
	"slices"
	"strings"
)

// Sample is one measurement of one metric on one subject.
type Sample struct {
	Subject string  `json:"subject"` // "hull-container", "hull-vm", "runc", "docker", "qemu", "gokvm"
	Metric  string  `json:"metric"`  // e.g. "start-to-exit"
	Unit    string  `json:"unit"`    // "ms", "MiB", "ns/op", "MB/s"
	Value   float64 `json:"value"`
	Run     int     `json:"run"`             // which interleaved round
	Where   string  `json:"where,omitempty"` // "host" or "lab" (nested KVM lab: ratios only)
}

// Summary is the spread of one subject's samples of one metric.
type Summary struct {
	Subject, Metric, Unit, Where string
	N                            int
	Median, Min, Max             float64
	// Ratio is Median over the baseline subject's median of the same metric; NaN when
	// there is no baseline for the metric.
	Ratio float64
}

// Median returns the median of vs (the mean of the middle two for an even count), or
// NaN for none.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Summarize groups samples by metric and subject, metrics and subjects in the order
// they first appear, and computes each group's median, min, max and ratio to the
// baseline subject's median of the same metric.
func Summarize(samples []Sample, baseline string) []Summary {
	type key struct{ subject, metric string }
	var metrics []string
	subjects := map[string][]string{} // metric -> subjects in first-seen order
	groups := map[key][]float64{}
	first := map[key]Sample{}
	for _, s := range samples {
		k := key{s.Subject, s.Metric}
		if _, ok := groups[k]; !ok {
			if len(subjects[s.Metric]) == 0 {
				metrics = append(metrics, s.Metric)
			}
			subjects[s.Metric] = append(subjects[s.Metric], s.Subject)
			first[k] = s
		}
		groups[k] = append(groups[k], s.Value)
	}
	var out []Summary
	for _, m := range metrics {
		bm := math.NaN()
		if base, ok := groups[key{baseline, m}]; ok {
			bm = Median(base)
		}
		for _, subj := range subjects[m] {
			k := key{subj, m}
			vs := groups[k]
			sum := Summary{Subject: subj, Metric: m, Unit: first[k].Unit, Where: first[k].Where, N: len(vs),
				Median: Median(vs), Min: slices.Min(vs), Max: slices.Max(vs), Ratio: math.NaN()}
			if bm != 0 {
				sum.Ratio = sum.Median / bm
			}
			out = append(out, sum)
		}
	}
	return out
}

// HigherIsBetter reports whether a larger value of a metric in unit is better: rates
// are, times and sizes are not.
func HigherIsBetter(unit string) bool { return strings.HasSuffix(unit, "/s") }
