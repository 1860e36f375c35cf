package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"
)

// Report is one hull bench run: the host it ran on, what was missing, and every sample.
type Report struct {
	Host     string    `json:"host"`
	Started  time.Time `json:"started"`
	Runs     int       `json:"runs"`
	Baseline string    `json:"baseline"` // the host's baseline subject
	// LabBaseline is the baseline of the rows measured in the nested lab (Where "lab"):
	// lab figures are only ever compared with figures from the same lab run.
	LabBaseline string `json:"lab_baseline,omitempty"`
	// Missing lists peers or modes that could not be measured, with the reason.
	Missing []Missing `json:"missing,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
	Samples []Sample  `json:"samples"`
}

// Missing is a subject that was asked for but could not run here.
type Missing struct {
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

// Baselines maps each place to its baseline subject, for Summarize.
func (r *Report) Baselines() map[string]string {
	b := map[string]string{"host": r.Baseline}
	if r.LabBaseline != "" {
		b["lab"] = r.LabBaseline
	}
	return b
}

// BaselineTitle names the baselines: "runc", or "runc on the host, hull-vm in the lab".
func (r *Report) BaselineTitle() string {
	switch {
	case r.LabBaseline == "":
		return r.Baseline
	case r.Baseline == "":
		return r.LabBaseline + " in the lab"
	}
	return r.Baseline + " on the host, " + r.LabBaseline + " in the lab"
}

// WriteTable prints the summaries: median, min, max and the ratio to the baseline of
// the same place.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	col := "vs " + r.Baseline
	if r.LabBaseline != "" {
		col = "vs baseline (same place)"
	}
	fmt.Fprintf(tw, "metric\tsubject\twhere\tn\tmedian\tmin\tmax\tunit\tbetter\t%s\t\n", col)
	for _, s := range Summarize(r.Samples, r.Baselines()) {
		ratio := "-"
		if !math.IsNaN(s.Ratio) {
			ratio = fmt.Sprintf("%.2fx", s.Ratio)
		}
		better := "lower"
		if HigherIsBetter(s.Unit) {
			better = "higher"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Metric, s.Subject, s.Where, s.N,
			num(s.Median), num(s.Min), num(s.Max), s.Unit, better, ratio)
	}
	for _, m := range r.Missing {
		fmt.Fprintf(tw, "-\t%s\tmissing\t0\t-\t-\t-\t-\t-\t-\t\n", m.Subject)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range r.Missing {
		fmt.Fprintf(w, "missing: %s: %s\n", m.Subject, m.Reason)
	}
	if r.LabBaseline != "" {
		fmt.Fprintf(w, "note: ratios are to %s, each row against the baseline of its own place\n", r.BaselineTitle())
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// WriteJSON writes the whole report, raw samples included.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("read bench report: %w", err)
	}
	return &r, nil
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
