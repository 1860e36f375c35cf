package chart

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/hullvm/hull/bench"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Write draws one bar group per metric of r: each subject's median as a ratio to the
// median of the baseline of its place (1.0 = as fast or as small as the baseline), and
// saves it as base.png and base.svg in dir. Subjects measured in the nested lab are
// named "NAME (lab)". Metrics without a baseline are left out of the chart.
func Write(r *bench.Report, dir, base string) ([]string, error) {
	sums := bench.Summarize(r.Samples, r.Baselines())
	var metrics []string
	seen := map[string]bool{}
	var subjects []string
	seenSubj := map[string]bool{}
	var names []string
	for _, s := range sums {
		if math.IsNaN(s.Ratio) {
			continue
		}
		if !seen[s.Metric] {
			seen[s.Metric] = true
			metrics = append(metrics, s.Metric)
			name := s.Metric + " ↓"
			if bench.HigherIsBetter(s.Unit) {
				name = s.Metric + " ↑"
			}
			names = append(names, name)
		}
		if n := chartName(s); !seenSubj[n] {
			seenSubj[n] = true
			subjects = append(subjects, n)
		}
	}
	if len(metrics) == 0 {
		return nil, fmt.Errorf("chart: no metric has a %s baseline to compare with", r.BaselineTitle())
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("hull bench: medians relative to %s (%d runs; ↓ lower is better, ↑ higher is better)", r.BaselineTitle(), r.Runs)
	p.Y.Label.Text = "ratio to the baseline of the same place"
	if r.LabBaseline == "" {
		p.Y.Label.Text = "ratio to " + r.Baseline
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.X.Padding = vg.Points(30)
	width := vg.Points(math.Min(1100, math.Max(640, float64(len(subjects)*len(metrics))*28)))
	w := vg.Points(math.Min(40, width.Points()*0.75/float64(len(subjects)*len(metrics))))
	hi := 0.0
	for i, subj := range subjects {
		vals := make(plotter.Values, len(metrics))
		for j, m := range metrics {
			vals[j] = 0
			for _, s := range sums {
				if chartName(s) == subj && s.Metric == m && !math.IsNaN(s.Ratio) {
					vals[j] = s.Ratio
					hi = math.Max(hi, s.Ratio)
				}
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", subj, err)
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(float64(i)-float64(len(subjects)-1)/2)
		p.Add(bars)
		p.Legend.Add(subj, bars)
		// The ratio written above each bar: bars of very different heights stay readable.
		xy := plotter.XYLabels{XYs: make(plotter.XYs, len(vals)), Labels: make([]string, len(vals))}
		for j, v := range vals {
			xy.XYs[j] = plotter.XY{X: float64(j), Y: v}
			xy.Labels[j] = fmt.Sprintf("%.2g", v)
		}
		labels, err := plotter.NewLabels(xy)
		if err != nil {
			return nil, fmt.Errorf("chart labels %s: %w", subj, err)
		}
		labels.Offset = vg.Point{X: bars.Offset - w/3, Y: vg.Points(2)}
		for k := range labels.TextStyle {
			labels.TextStyle[k].Font.Size = vg.Points(8)
		}
		p.Add(labels)
	}
	p.Add(plotter.NewGrid())
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 7
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Y.Min, p.Y.Max = 0, hi*1.15
	var out []string
	for _, ext := range []string{"png", "svg"} {
		path := filepath.Join(dir, base+"."+ext)
		if err := p.Save(width, 5*vg.Inch, path); err != nil {
			return nil, fmt.Errorf("save chart %s: %w", path, err)
		}
		out = append(out, path)
	}
	return out, nil
}

// chartName is a summary's subject, marked when it was measured in the lab.
func chartName(s bench.Summary) string {
	if s.Where == "lab" {
		return s.Subject + " (lab)"
	}
	return s.Subject
}
