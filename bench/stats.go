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
	// Ratio is Median over the median of the same metric on the baseline subject of the
	// same place (Where); NaN when that place has no baseline figure for the metric.
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

// Place is where a sample was taken, "host" for the empty Where of older reports.
func Place(where string) string {
	if where == "" {
		return "host"
	}
	return where
}

// Summarize groups samples by metric, place and subject, each in the order it first
// appears, and computes each group's median, min, max and ratio to the median of the
// same metric on the baseline subject of the same place: baselines maps a place
// ("host", "lab") to its baseline subject. Figures taken in different places (the host,
// the nested lab under TCG emulation) are never divided by one another.
func Summarize(samples []Sample, baselines map[string]string) []Summary {
	type key struct{ subject, metric, where string }
	var metrics []string
	subjects := map[string][]key{} // metric -> (subject, where) in first-seen order
	groups := map[key][]float64{}
	first := map[key]Sample{}
	for _, s := range samples {
		k := key{s.Subject, s.Metric, Place(s.Where)}
		if _, ok := groups[k]; !ok {
			if len(subjects[s.Metric]) == 0 {
				metrics = append(metrics, s.Metric)
			}
			subjects[s.Metric] = append(subjects[s.Metric], k)
			first[k] = s
		}
		groups[k] = append(groups[k], s.Value)
	}
	var out []Summary
	for _, m := range metrics {
		for _, k := range subjects[m] {
			vs := groups[k]
			sum := Summary{Subject: k.subject, Metric: m, Unit: first[k].Unit, Where: k.where, N: len(vs),
				Median: Median(vs), Min: slices.Min(vs), Max: slices.Max(vs), Ratio: math.NaN()}
			if b, ok := baselines[k.where]; ok {
				if base, ok := groups[key{b, m, k.where}]; ok {
					if bm := Median(base); bm != 0 {
						sum.Ratio = sum.Median / bm
					}
				}
			}
			out = append(out, sum)
		}
	}
	return out
}

// HigherIsBetter reports whether a larger value of a metric in unit is better: rates
// are, times and sizes are not.
func HigherIsBetter(unit string) bool { return strings.HasSuffix(unit, "/s") }
