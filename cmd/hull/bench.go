package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/bench"
	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/host"
	"github.com/hullvm/hull/lab"
)

func newBenchCmd(g *globals, io stdio) *cobra.Command {
	var (
		modes, peers []string
		runs, dens   int
		fileMB       int
		out, busybox string
		jsonOut      bool
		labRuns      int
		labDensity   int
		labFileMB    int
		// Hidden: set by the outer run for the inner one in the nested lab.
		where, rootfs                    string
		bootKernel, bootInitrd, bootQEMU string
		bootQEMUArgs                     []string
	)
	c := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Measure VM against container overhead, side by side with peers",
		Long: `Measure cold start, memory, a system-call loop and file I/O for hull's isolation modes
and the peers found on this host (runc, Docker), interleaved round by round so that
machine noise hits all alike. Writes a table to stdout and, with --out, the raw samples
as JSON and a chart as PNG and SVG. A peer or mode that cannot run here is listed as
missing with the reason, never silently dropped.

On a host whose KVM cannot boot Linux (PVM, see 'hull doctor') VM mode and QEMU are
measured in the nested lab when it is ready ('hull lab'): those rows say "lab", are
fewer (--lab-runs, --lab-density: each VM start there takes seconds of emulation) and
are compared only with the lab's own baseline, hull-vm; QEMU microvm, which cannot run
hull's agent, is measured against hull's VMM by boot-to-exit of the same kernel.`,
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
				Peers: peers, Runs: runs, Density: dens, FileMB: fileMB, Work: work, Log: io.err,
				Where: where, Rootfs: rootfs}
			if bootKernel != "" {
				cfg.Boot = &bench.Boot{Kernel: bootKernel, Initrd: bootInitrd, QEMU: bootQEMU, QEMUArgs: bootQEMUArgs}
			}
			var inLab *labBench
			if where != "lab" {
				d := cache.Dir(g.cache)
				if err := hostBootPair(&cfg, d); err != nil {
					return err
				}
				if p := host.Probe(cmd.Context(), host.System(g.cache)); !p.Modes.VM.OK {
					cfg.VMReason = p.Modes.VM.Summary
					if wantLab(modes, peers) && p.Lab.Ready {
						inLab = &labBench{peers: peers, runs: labRuns, density: labDensity, fileMB: labFileMB,
							busybox: busybox, reason: p.Modes.VM.Summary}
						cfg.Modes, cfg.Peers = without(modes, "vm"), without(peers, "qemu", "gokvm")
					} else if wantLab(modes, peers) {
						cfg.VMReason += "; the nested lab is not ready either (scripts/setup fetches it; see 'hull doctor')"
					}
				}
			}
			var r *bench.Report
			if inLab != nil && len(cfg.Modes) == 0 && len(cfg.Peers) == 0 {
				r = bench.NewReport(runs) // everything asked for runs in the lab
			} else {
				r, err = bench.Run(cmd.Context(), cfg)
			}
			if inLab != nil && r != nil {
				if slices.Contains(peers, "gokvm") {
					r.Missing = append(r.Missing, bench.Missing{Subject: "gokvm", Reason: bench.GokvmReason})
				}
				lr, lerr := inLab.run(cmd.Context(), g, io)
				if lerr != nil {
					if lr == nil {
						why := "nested lab run failed: " + lerr.Error()
						if slices.Contains(modes, "vm") {
							r.Missing = append(r.Missing, bench.Missing{Subject: "hull-vm", Reason: why})
						}
						if slices.Contains(peers, "qemu") {
							r.Missing = append(r.Missing, bench.Missing{Subject: "qemu", Reason: why})
						}
					}
					if err == nil {
						err = lerr
					}
				}
				r.MergeLab(lr)
			}
			if where == "lab" && r != nil && err != nil {
				// The outer run reads this report: say what stopped the lab's run there.
				r.Missing = append(r.Missing, bench.Missing{Subject: "lab run", Reason: err.Error()})
			}
			if r != nil && (len(r.Samples) > 0 || where == "lab") {
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
	f.StringVar(&out, "out", "", "directory for bench.json, and bench.png and bench.svg when hull-chart is installed")
	f.StringVar(&busybox, "busybox", "/bin/busybox", "static busybox for the bench image")
	f.BoolVar(&jsonOut, "json", false, "print the raw samples as JSON instead of the table")
	f.IntVar(&labRuns, "lab-runs", 2, "rounds in the nested lab, when VM mode runs there")
	f.IntVar(&labDensity, "lab-density", 2, "idle VMs at once for the density figure in the nested lab (0 leaves it out)")
	f.IntVar(&labFileMB, "lab-file-mb", 8, "file I/O size inside the workload in the nested lab, MiB")
	f.StringVar(&where, "where", "host", "stamp samples as taken here: host or lab")
	f.StringVar(&rootfs, "rootfs", "", "the bench image's tarball, made beforehand")
	f.StringVar(&bootKernel, "boot-kernel", "", "guest kernel for the boot-to-exit pair")
	f.StringVar(&bootInitrd, "boot-initrd", "", "initramfs for the boot-to-exit pair")
	f.StringVar(&bootQEMU, "boot-qemu", "", "QEMU binary for the boot-to-exit pair")
	f.StringArrayVar(&bootQEMUArgs, "boot-qemu-arg", nil, "extra QEMU argument for the boot-to-exit pair")
	for _, h := range []string{"where", "rootfs", "boot-kernel", "boot-initrd", "boot-qemu", "boot-qemu-arg"} {
		f.MarkHidden(h)
	}
	return c
}

// hostBootPair sets up the boot-to-exit pair on a host that asks for qemu and has it,
// with the cache's guest kernel and initramfs. Without them qemu is reported missing.
func hostBootPair(cfg *bench.Config, d cache.Dir) error {
	if cfg.Boot != nil || !slices.Contains(cfg.Peers, "qemu") {
		return nil
	}
	q, err := exec.LookPath("qemu-system-x86_64")
	if err != nil || cache.Need(d.BootKernel(), "guest kernel") != nil || cache.Need(d.Initramfs(), "initramfs") != nil {
		return nil
	}
	cfg.Boot = &bench.Boot{Kernel: d.BootKernel(), Initrd: d.Initramfs(), QEMU: q}
	return nil
}

func wantLab(modes, peers []string) bool {
	return slices.Contains(modes, "vm") || slices.Contains(peers, "qemu")
}

func without(list []string, drop ...string) []string {
	var out []string
	for _, v := range list {
		if !slices.Contains(drop, v) {
			out = append(out, v)
		}
	}
	return out
}

// labBench is the VM part of a bench run, measured in the nested lab.
type labBench struct {
	peers                 []string
	runs, density, fileMB int
	busybox, reason       string
}

// run boots the lab with the payload of 'hull lab run', the bench image and, when qemu
// is asked for, QEMU with its libraries and microvm firmware, runs hull bench for VM
// mode there and returns its report.
func (l *labBench) run(ctx context.Context, g *globals, io stdio) (*bench.Report, error) {
	d := cache.Dir(g.cache)
	work, err := os.MkdirTemp("", "hull-bench-lab-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	tarball, err := bench.Rootfs(ctx, work, l.busybox)
	if err != nil {
		return nil, err
	}
	payload, err := labPayload(d, []string{tarball + ":bench-rootfs.tar", l.busybox + ":busybox"})
	if err != nil {
		return nil, err
	}
	args := bench.LabArgs{Runs: l.runs, Density: l.density, FileMB: l.fileMB,
		Busybox: "/payload/busybox", Rootfs: "/payload/bench-rootfs.tar"}
	if slices.Contains(l.peers, "qemu") {
		args.Peers = []string{"qemu"}
		if err := labQEMU(payload); err != nil {
			return nil, err
		}
		args.Boot = &bench.Boot{Kernel: "/payload/" + labKernelPath(d), Initrd: "/payload/cache/initramfs/current.cpio.gz",
			QEMU: "/payload/qemu", QEMUArgs: []string{"-L", "/payload"}}
	}
	cfg := lab.Default(d)
	cfg.Payload = payload
	cfg.Log = labProgress{io.err}
	// Each VM start in L1 takes about 15 s of emulation: allow for every round.
	cfg.Timeout = lab.DefaultTimeout + time.Duration(l.runs*6+l.density+4)*time.Minute
	cfg.Script = "export PATH=/payload:$PATH HULL_CACHE=/payload/cache\n" + bench.LabScript(args)
	fmt.Fprintf(io.err, "bench: %s; measuring VM mode in the nested lab (%d rounds, density %d)\n", l.reason, l.runs, l.density)
	res, err := lab.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r, err := bench.ParseLab(res.Output)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		err = fmt.Errorf("hull bench in the lab exited %d (its reason is under missing)", res.ExitCode)
	}
	return r, err
}

// labQEMU adds QEMU, its libraries and the microvm firmware (found through -L) to a lab
// payload.
func labQEMU(payload map[string]string) error {
	q, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return fmt.Errorf("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
	}
	if err := lab.AddBinary(payload, q, "qemu"); err != nil {
		return err
	}
	const bios = "/usr/share/qemu/bios-microvm.bin"
	if err := cache.Need(bios, "QEMU's microvm firmware"); err != nil {
		return err
	}
	payload["bios-microvm.bin"] = bios
	return nil
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
	if err := f.Close(); err != nil {
		return err
	}
	paths := []string{f.Name()}
	charts, err := drawChart(f.Name())
	if err != nil {
		fmt.Fprintf(io.err, "bench: no chart: %v\n", err)
	}
	paths = append(paths, charts...)
	fmt.Fprintf(io.err, "bench: wrote %s at %s\n", strings.Join(paths, ", "), time.Now().UTC().Format(time.RFC3339))
	return nil
}

// drawChart runs hull-chart on a report and returns the files it wrote. hull-chart is
// a binary of its own (the plotting library's start-up cost stays out of this one),
// found beside hull's executable or on PATH.
func drawChart(report string) ([]string, error) {
	bin, err := sibling("hull-chart")
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, report)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", bin, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.Fields(string(out)), nil
}

// sibling finds one of hull's helper binaries: beside hull's own executable first (as
// make build leaves them in bin/), then on PATH.
func sibling(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is neither beside hull's executable nor on PATH (make build puts it in bin/)", name)
	}
	return p, nil
}

// labProgress passes on the inner run's progress lines from L1's console, one line per
// Write as the lab writes them, and drops the rest of the console.
type labProgress struct{ w io.Writer }

func (l labProgress) Write(p []byte) (int, error) {
	if rest, ok := bytes.CutPrefix(p, []byte("bench: ")); ok {
		fmt.Fprintf(l.w, "bench: lab: %s", rest)
	}
	return len(p), nil
}
