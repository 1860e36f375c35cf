package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/bench"
	"github.com/hullvm/hull/host"
)

func newBenchCmd(g *globals, io stdio) *cobra.Command {
	var (
		modes, peers []string
		runs, dens   int
		fileMB       int
		out, busybox string
		jsonOut      bool
	)
	c := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Measure VM against container overhead, side by side with peers",
		Long: `Measure cold start, memory, a system-call loop and file I/O for hull's isolation modes
and the peers found on this host (runc, Docker), interleaved round by round so that
machine noise hits all alike. Writes a table to stdout and, with --out, the raw samples
as JSON and a chart as PNG and SVG. A peer or mode that cannot run here is listed as
missing with the reason, never silently dropped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the hull binary: %w", err)
			}
			work, err := os.MkdirTemp("", "hull-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(work)
			cfg := bench.Config{Hull: self, Root: filepath.Join(work, "state"), Busybox: busybox, Modes: modes,
				Peers: peers, Runs: runs, Density: dens, FileMB: fileMB, Work: work, Log: io.err}
			if r := host.Probe(cmd.Context(), host.System(g.cache)); !r.Modes.VM.OK {
				cfg.VMReason = r.Modes.VM.Summary
			}
			r, err := bench.Run(cmd.Context(), cfg)
			if r != nil && len(r.Samples) > 0 {
				if werr := writeBench(r, out, jsonOut, io); werr != nil && err == nil {
					err = werr
				}
			}
			return err
		},
	}
	f := c.Flags()
	f.StringSliceVar(&modes, "modes", []string{"container", "vm"}, "hull isolation modes to measure")
	f.StringSliceVar(&peers, "peers", []string{"runc", "docker", "qemu", "gokvm"}, "peers to measure beside hull")
	f.IntVar(&runs, "runs", 5, "interleaved rounds")
	f.IntVar(&dens, "density", 4, "idle instances at once for the density figure (0 leaves it out)")
	f.IntVar(&fileMB, "file-mb", 32, "file I/O size inside the workload, MiB")
	f.StringVar(&out, "out", "", "directory for bench.json, bench.png and bench.svg")
	f.StringVar(&busybox, "busybox", "/bin/busybox", "static busybox for the bench image")
	f.BoolVar(&jsonOut, "json", false, "print the raw samples as JSON instead of the table")
	return c
}

func writeBench(r *bench.Report, out string, jsonOut bool, io stdio) error {
	if jsonOut {
		if err := r.WriteJSON(io.out); err != nil {
			return err
		}
	} else if err := r.WriteTable(io.out); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "bench.json"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := r.WriteJSON(f); err != nil {
		return err
	}
	paths, err := r.WriteChart(out, "bench")
	if err != nil {
		return err
	}
	fmt.Fprintf(io.err, "bench: wrote %s, %s at %s\n", f.Name(), strings.Join(paths, ", "), time.Now().UTC().Format(time.RFC3339))
	return nil
}
