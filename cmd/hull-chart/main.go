// Command hull-chart draws the chart of a `hull bench` report: it reads the report's
// JSON and writes NAME.png and NAME.svg beside it (or in --out). `hull bench --out DIR`
// runs it when it finds it beside its own executable or on PATH.
//
// It is a binary of its own so that gonum plot, whose package initializer parses twelve
// embedded fonts (4.5 MiB of page faults), is not in the hull CLI that starts VMs and
// containers (docs/vmm.md, "Where the CLI's start-up goes").
//
// Usage:
//
//	hull-chart [--out DIR] [--name NAME] REPORT.json
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hullvm/hull/bench"
	"github.com/hullvm/hull/bench/chart"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("hull-chart", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory for the chart (default: the report's)")
	name := fs.String("name", "", "base name of the chart files (default: the report's, without .json)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: hull-chart [--out DIR] [--name NAME] REPORT.json\n\nDraws a hull bench report as NAME.png and NAME.svg.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "hull-chart: want one report (the bench.json that hull bench --out writes); see --help")
		return 2
	}
	paths, err := draw(fs.Arg(0), *out, *name)
	if err != nil {
		fmt.Fprintf(stderr, "hull-chart: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, strings.Join(paths, "\n"))
	return 0
}

func draw(report, out, name string) ([]string, error) {
	f, err := os.Open(report)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := bench.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("read report %s: %w", report, err)
	}
	if out == "" {
		out = filepath.Dir(report)
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(report), ".json")
	}
	return chart.Write(r, out, name)
}
