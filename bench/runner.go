package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is one hull bench run.
type Config struct {
	Hull    string   // the hull binary to measure
	Root    string   // a state directory for hull's bench image and containers
	Busybox string   // a static busybox for the bench image
	Modes   []string // "container", "vm"
	Peers   []string // "runc", "docker", "qemu", "gokvm"
	Runs    int
	Density int // idle instances at once for the density figure; 0 leaves it out
	FileMB  int // file I/O size inside the workload
	Work    string
	Log     io.Writer
	// VMReason, when set, is why VM mode cannot be measured on this host.
	VMReason string
	// Where stamps every sample: "host" (the default) or "lab" for a run inside the
	// nested lab, whose figures are compared only with one another.
	Where string
	// Rootfs, if set, is the bench image's tarball made beforehand by Rootfs (the lab has
	// no Go toolchain to build the workload).
	Rootfs string
	// Boot, if set, measures boot-to-exit of hull's VMM against QEMU's microvm.
	Boot *Boot
}

func (c Config) where() string { return Place(c.Where) }

// Validate checks the configuration before anything runs.
func (c Config) Validate() error {
	if c.Runs < 1 {
		return fmt.Errorf("--runs %d: need at least 1", c.Runs)
	}
	if c.Hull == "" || c.Busybox == "" || c.Work == "" || c.Root == "" {
		return errors.New("bench: hull binary, busybox, work and state directories are required")
	}
	for _, m := range c.Modes {
		if m != "container" && m != "vm" {
			return fmt.Errorf("--modes: unknown mode %q (container, vm)", m)
		}
	}
	for _, p := range c.Peers {
		switch p {
		case "runc", "docker", "qemu", "gokvm":
		default:
			return fmt.Errorf("--peers: unknown peer %q (runc, docker, qemu, gokvm)", p)
		}
	}
	return nil
}

// Run measures every subject found on this host, interleaved round by round so that
// machine noise hits all alike, and returns the report.
func Run(ctx context.Context, c Config) (*Report, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := NewReport(c.Runs)
	logf := func(f string, a ...any) { fmt.Fprintf(c.Log, "bench: "+f+"\n", a...) }

	tarball := c.Rootfs
	if tarball == "" {
		t, err := Rootfs(ctx, c.Work, c.Busybox)
		if err != nil {
			return nil, err
		}
		tarball = t
	}
	subjects, missing := c.subjects(ctx, tarball)
	boots, bootMissing := c.boots()
	r.Missing = append(missing, bootMissing...)
	if len(subjects) == 0 && len(boots) == 0 {
		return r, errors.New("bench: nothing to measure: every mode and peer is missing")
	}
	if len(subjects) > 0 {
		r.Baseline = subjects[0].Name
	} else {
		r.Baseline = boots[0].Name
	}
	for _, s := range subjects {
		if s.Name == "runc" {
			r.Baseline = "runc"
		}
		if s.Name == "hull-container" {
			r.Notes = append(r.Notes, volatileNote)
		}
	}
	if c.where() == "lab" {
		r.LabBaseline = r.Baseline
	}
	vol := filepath.Join(c.Work, "vol")
	if err := os.MkdirAll(vol, 0o777); err != nil {
		return nil, err
	}
	mb := strconv.Itoa(max(c.FileMB, 1))
	for run := 0; run < c.Runs; run++ {
		for i := range subjects {
			// Rotate the order each round so no subject always goes first.
			s := subjects[(i+run)%len(subjects)]
			logf("round %d/%d: %s", run+1, c.Runs, s.Name)
			ss, err := measure(ctx, s, run, vol, mb)
			if err != nil {
				return r, fmt.Errorf("%s, round %d: %w", s.Name, run+1, err)
			}
			r.Samples = append(r.Samples, ss...)
		}
		for i := range boots {
			b := boots[(i+run)%len(boots)]
			logf("round %d/%d: %s boot-to-exit", run+1, c.Runs, b.Name)
			s, err := b.measure(ctx, run, c.where())
			if err != nil {
				return r, fmt.Errorf("%s, round %d: %w", b.Name, run+1, err)
			}
			r.Samples = append(r.Samples, s)
		}
	}
	if c.Density > 0 {
		for _, s := range subjects {
			logf("density: %d idle %s instances", c.Density, s.Name)
			v, err := density(ctx, s, c.Density, vol)
			if err != nil {
				return r, fmt.Errorf("%s density: %w", s.Name, err)
			}
			r.Samples = append(r.Samples, Sample{Subject: s.Name, Metric: "density-per-instance", Unit: "MiB", Value: v, Where: s.Where})
		}
	}
	return r, nil
}

// NewReport is an empty report of runs rounds on this host, started now.
func NewReport(runs int) *Report {
	host, _ := os.Hostname()
	return &Report{Host: host + " (" + kernelRelease() + ")", Started: time.Now().UTC(), Runs: runs}
}

// subjects sets up each requested mode and peer, and says why the others are missing.
func (c Config) subjects(ctx context.Context, tarball string) ([]Subject, []Missing) {
	var out []Subject
	var missing []Missing
	image := "hull-bench:latest"
	for _, m := range c.Modes {
		if m == "vm" && c.VMReason != "" {
			missing = append(missing, Missing{"hull-vm", c.VMReason})
			continue
		}
		if m == "container" && c.where() == "lab" {
			missing = append(missing, Missing{"hull-container", "not measured in the nested lab: container mode runs on the host"})
			continue
		}
		if b, err := exec.CommandContext(ctx, c.Hull, "--root", c.Root, "import", tarball, image).CombinedOutput(); err != nil {
			missing = append(missing, Missing{"hull-" + m, fmt.Sprintf("hull import: %v: %s", err, bytes.TrimSpace(b))})
			continue
		}
		out = append(out, hullSubject(c.Hull, c.Root, image, m, c.where()))
	}
	for _, p := range c.Peers {
		switch p {
		case "runc":
			runc, err := exec.LookPath("runc")
			if err != nil {
				missing = append(missing, Missing{"runc", "runc not on PATH: apt-get install runc"})
				continue
			}
			rootfs := filepath.Join(c.Work, "runc-rootfs")
			if err := extract(ctx, tarball, rootfs); err != nil {
				missing = append(missing, Missing{"runc", err.Error()})
				continue
			}
			s, err := runcSubject(runc, filepath.Join(c.Work, "runc"), rootfs)
			if err != nil {
				missing = append(missing, Missing{"runc", err.Error()})
				continue
			}
			out = append(out, s)
		case "docker":
			docker, err := dockerBinary(ctx)
			if err != nil {
				missing = append(missing, Missing{"docker", err.Error()})
				continue
			}
			if b, err := exec.CommandContext(ctx, docker, "import", tarball, image).CombinedOutput(); err != nil {
				missing = append(missing, Missing{"docker", fmt.Sprintf("docker import: %v: %s", err, bytes.TrimSpace(b))})
				continue
			}
			out = append(out, dockerSubject(docker, image))
		case "gokvm":
			missing = append(missing, Missing{p, GokvmReason})
		}
	}
	return out, missing
}

// dockerBinary finds a docker client whose engine answers.
func dockerBinary(ctx context.Context) (string, error) {
	for _, d := range []string{"/usr/bin/docker", "docker"} {
		p, err := exec.LookPath(d)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = exec.CommandContext(cctx, p, "version", "--format", "{{.Server.Version}}").Run()
		cancel()
		if err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Docker engine answers: apt-get install docker.io, then start containerd and dockerd")
}

// measure takes one round of figures from one subject.
func measure(ctx context.Context, s Subject, run int, vol, mb string) ([]Sample, error) {
	var ss []Sample
	id := fmt.Sprintf("hull-bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	first, exit, _, err := timed(ctx, s, id, []string{"/workload", "ready"}, vol)
	if err != nil {
		return nil, fmt.Errorf("cold start: %w", err)
	}
	ss = append(ss,
		Sample{Subject: s.Name, Metric: "start-to-first-output", Unit: "ms", Value: ms(first), Run: run, Where: s.Where},
		Sample{Subject: s.Name, Metric: "start-to-exit", Unit: "ms", Value: ms(exit), Run: run, Where: s.Where})
	for _, args := range [][]string{
		{"/workload", "syscalls"},
		{"/workload", "-mb", mb, "io"},
		{"/workload", "-mb", mb, "-dir", "/vol", "-tag", "volume", "io"},
	} {
		_, _, out, err := timed(ctx, s, id+"w", args, vol)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
		}
		ws, err := ParseWorkload(out, s.Name, s.Where, run)
		if err != nil {
			return nil, err
		}
		ss = append(ss, ws...)
	}
	m, err := idleMem(ctx, s, id+"m", vol)
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	ss = append(ss,
		Sample{Subject: s.Name, Metric: "rss", Unit: "MiB", Value: float64(m.RSS) / 1024, Run: run, Where: s.Where},
		Sample{Subject: s.Name, Metric: "pss", Unit: "MiB", Value: float64(m.PSS) / 1024, Run: run, Where: s.Where})
	return ss, nil
}

// timed runs args to completion and returns the time to the first byte of output, the
// time to exit, and the output.
func timed(ctx context.Context, s Subject, id string, args []string, vol string) (time.Duration, time.Duration, string, error) {
	defer s.Cleanup(id)
	c, err := s.Cmd(ctx, id, args, vol)
	if err != nil {
		return 0, 0, "", err
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	pipe, err := c.StdoutPipe()
	if err != nil {
		return 0, 0, "", err
	}
	start := time.Now()
	if err := c.Start(); err != nil {
		return 0, 0, "", err
	}
	var out bytes.Buffer
	buf := make([]byte, 1)
	var first time.Duration
	if n, _ := pipe.Read(buf); n > 0 {
		first = time.Since(start)
		out.Write(buf[:n])
	}
	io.Copy(&out, pipe)
	err = c.Wait()
	exit := time.Since(start)
	if err != nil {
		return 0, 0, "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if first == 0 {
		return 0, 0, "", errors.New("no output")
	}
	return first, exit, out.String(), nil
}

// idleMem starts an idle instance, waits until it is up and returns its memory.
func idleMem(ctx context.Context, s Subject, id, vol string) (Mem, error) {
	c, stop, err := startIdle(ctx, s, id, vol)
	if err != nil {
		return Mem{}, err
	}
	defer stop()
	pid, err := s.MemPID(ctx, id, c)
	if err != nil {
		return Mem{}, err
	}
	return TreeMem("/proc", pid)
}

func startIdle(ctx context.Context, s Subject, id, vol string) (*exec.Cmd, func(), error) {
	c, err := s.Cmd(ctx, id, []string{"sh", "-c", "/workload ready; exec sleep 600"}, vol)
	if err != nil {
		return nil, nil, err
	}
	pipe, err := c.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := c.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		s.Cleanup(id)
		c.Process.Kill()
		c.Wait()
	}
	line, err := bufio.NewReader(pipe).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		stop()
		return nil, nil, fmt.Errorf("idle instance did not come up: %q %v", line, err)
	}
	return c, stop, nil
}

// density starts n idle instances at once and returns the memory each adds: the sum of
// their proportional set sizes (shared pages split between them) over n. MemAvailable
// deltas would say the same on a quiet machine, but are lost in the noise of a busy one.
func density(ctx context.Context, s Subject, n int, vol string) (float64, error) {
	var stops []func()
	defer func() {
		for _, st := range stops {
			st()
		}
	}()
	type inst struct {
		id string
		c  *exec.Cmd
	}
	var insts []inst
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("hull-bench-d%d-%d", os.Getpid(), i)
		c, stop, err := startIdle(ctx, s, id, vol)
		if err != nil {
			return 0, err
		}
		stops = append(stops, stop)
		insts = append(insts, inst{id, c})
	}
	var pss int64
	for _, in := range insts {
		pid, err := s.MemPID(ctx, in.id, in.c)
		if err != nil {
			return 0, err
		}
		m, err := TreeMem("/proc", pid)
		if err != nil {
			return 0, err
		}
		pss += m.PSS
	}
	return float64(pss) / 1024 / float64(n), nil
}

func memAvailable() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return ParseMemAvailable(string(b))
}

// ParseMemAvailable reads MemAvailable (KiB) from /proc/meminfo.
func ParseMemAvailable(meminfo string) (int64, error) {
	for _, l := range strings.Split(meminfo, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("/proc/meminfo has no MemAvailable line")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown kernel"
	}
	return strings.TrimSpace(string(b))
}

// volatileNote explains hull-container's root-filesystem fsync rows: its instances run
// with --rm, like the peers', and a --rm container's writable layer is mounted
// volatile (nothing in it can outlive the container, docs/run.md).
const volatileNote = "hull-container runs with --rm, whose writable layer is volatile (nothing in it outlives the container): " +
	"an fsync in its root filesystem returns at once, so its *-root fsync rows do not compare with the peers'; the *-volume rows do"
