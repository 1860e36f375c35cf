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
	Baseline string    `json:"baseline"`
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

// WriteTable prints the summaries: median, min, max and the ratio to the baseline.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\tsubject\twhere\tn\tmedian\tmin\tmax\tunit\tbetter\tvs %s\t\n", r.Baseline)
	for _, s := range Summarize(r.Samples, r.Baseline) {
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
