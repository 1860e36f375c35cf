package lab

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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hullvm/hull/cache"
)

// Defaults for the zero values of Config.
const (
	DefaultQEMU    = "qemu-system-x86_64"
	DefaultMemory  = 2048 // MiB
	DefaultCPUs    = 2
	DefaultCPU     = "max" // TCG's every feature, svm and npt included: L2 about 20% faster than qemu64,+svm
	DefaultTimeout = 10 * time.Minute
)

// ErrTimeout is wrapped by Run's error when L1 did not finish within Config.Timeout.
var ErrTimeout = errors.New("lab timeout")

// ErrLockup is wrapped by Run's error when L1's kernel reported a soft lockup (a CPU
// stuck in the kernel for over 20 s): under QEMU's emulation of AMD-V an L1 CPU
// sometimes never leaves an L2 guest again (docs/lab.md, "Stalls"), and the run would
// only end at its timeout. Run then kills L1 at once.
var ErrLockup = errors.New("L1 soft lockup")

// ErrSilent is wrapped by Run's error when L1's console printed nothing for
// Config.Silence: Run then killed L1.
var ErrSilent = errors.New("L1 silent")

// lockupSign is how L1's kernel reports a soft lockup on its console.
const lockupSign = "watchdog: BUG: soft lockup"

// Config says what L1 boots and what it runs. Zero Memory, CPUs, CPU and Timeout take
// the defaults above.
type Config struct {
	QEMU   string // qemu-system-x86_64, a path or a name looked up on PATH
	Kernel string // L1 kernel (Debian's vmlinuz, a bzImage)
	// KernelELF, if set, is the same kernel as an ELF vmlinux (scripts/lab-vmlinux) and is
	// booted instead of Kernel: QEMU enters it through PVH without decompressing a bzImage
	// under TCG, which saves about 2 s per L1 boot.
	KernelELF string
	Modules   string // folder with the modules L1 loads (kvm-amd.ko, erofs.ko...: moduleNames) for that kernel
	Busybox   string // a static busybox

	// Payload maps an L1 path to a host file copied there (hull binaries, the guest
	// kernel, the initramfs, disk images). Relative L1 paths are taken under /payload,
	// the script's working directory. Files keep their permission bits.
	Payload map[string]string

	// Script is run by busybox sh as root in L1, in /payload, after kvm and kvm-amd are
	// loaded (/dev/kvm exists). Its stdout and stderr are Result.Output, its exit status
	// Result.ExitCode. A `step NAME CMD [ARG...]` function is defined: it frames each
	// scenario's output and status for Result.Steps.
	Script string

	Memory  int           // L1 memory in MiB
	CPUs    int           // L1 vCPUs
	CPU     string        // QEMU -cpu model; it must offer svm
	Timeout time.Duration // L1 is killed after this long
	// Silence, if set, kills L1 once its console has printed nothing for this long
	// (ErrSilent): an L1 whose CPUs lock up with interrupts off prints nothing more,
	// not even a soft lockup report, and would otherwise run out Timeout.
	Silence time.Duration
	Log     io.Writer // if set, L1's serial console is written here line by line, live
}

// Default is the lab as scripts/setup leaves it in the cache dir d. KernelELF is set to
// lab/vmlinux when scripts/lab-vmlinux has made it.
func Default(d cache.Dir) Config {
	var elf string
	if p := filepath.Join(filepath.Dir(d.LabKernel()), "vmlinux"); isFile(p) {
		elf = p
	}
	return Config{
		QEMU:      DefaultQEMU,
		Kernel:    d.LabKernel(),
		KernelELF: elf,
		Modules:   d.LabModules(),
		Busybox:   d.LabBusybox(),
		Memory:    DefaultMemory,
		CPUs:      DefaultCPUs,
		CPU:       DefaultCPU,
		Timeout:   DefaultTimeout,
	}
}

// Validate checks that every file exists and the numbers make sense, and says what to
// do when they do not.
func (c Config) Validate() error {
	var errs []error
	if c.QEMU == "" {
		errs = append(errs, errors.New("lab: no QEMU binary given"))
	} else if _, err := exec.LookPath(c.QEMU); err != nil {
		errs = append(errs, fmt.Errorf("lab: QEMU %s: %w (apt-get install qemu-system-x86)", c.QEMU, err))
	}
	need := func(p, what string) {
		if p == "" {
			errs = append(errs, fmt.Errorf("lab: no %s given", what))
			return
		}
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("lab: %s: %w (scripts/lab-kernel fetches the lab's kernel, modules and busybox)", what, err))
			return
		}
		if !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("lab: %s %s is not a regular file", what, p))
		}
	}
	need(c.Kernel, "L1 kernel")
	if c.KernelELF != "" {
		need(c.KernelELF, "L1 kernel ELF")
	}
	need(c.Busybox, "busybox")
	if c.Modules == "" {
		errs = append(errs, errors.New("lab: no modules folder given"))
	} else {
		for _, m := range moduleNames() {
			need(filepath.Join(c.Modules, m+".ko"), "module "+m+".ko")
		}
	}
	if _, err := payloadFiles(c.Payload); err != nil {
		errs = append(errs, err)
	}
	for g, h := range c.Payload {
		st, err := os.Stat(h)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("lab: payload %s: %w", g, err))
		case !st.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("lab: payload %s: %s is not a regular file", g, h))
		case st.Size() > maxFileSize:
			errs = append(errs, fmt.Errorf("lab: payload %s: %s is over 4 GiB", g, h))
		}
	}
	if strings.TrimSpace(c.Script) == "" {
		errs = append(errs, errors.New("lab: empty script: say what L1 should run"))
	}
	if c.Memory != 0 && c.Memory < 256 {
		errs = append(errs, fmt.Errorf("lab: memory %d MiB is too small for L1 (at least 256)", c.Memory))
	}
	if c.CPUs < 0 || c.CPUs > 64 {
		errs = append(errs, fmt.Errorf("lab: %d CPUs is out of range (1 to 64)", c.CPUs))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("lab: negative timeout %v", c.Timeout))
	}
	return errors.Join(errs...)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func (c Config) withDefaults() Config {
	if c.Memory == 0 {
		c.Memory = DefaultMemory
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.CPU == "" {
		c.CPU = DefaultCPU
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

// qemuArgs is the QEMU command line booting L1 with the initramfs at initrd.
func (c Config) qemuArgs(initrd string) []string {
	kernel := c.Kernel
	if c.KernelELF != "" {
		kernel = c.KernelELF
	}
	return []string{
		"-M", "q35", "-accel", "tcg",
		"-cpu", c.CPU, "-smp", fmt.Sprint(c.CPUs), "-m", fmt.Sprint(c.Memory),
		"-nodefaults", "-display", "none", "-no-reboot",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet",
	}
}

// Result is what one L1 boot produced.
type Result struct {
	Output   string        // the script's stdout and stderr
	ExitCode int           // the script's exit status
	BootTime time.Duration // from starting QEMU to L1's /init running
	Total    time.Duration // the whole Run, building the initramfs included
	Console  string        // everything L1 printed on its serial console

	frame frame
}

// Steps splits Output into the scenarios the script framed with `step NAME CMD...`.
func (r Result) Steps() []Step { return r.frame.steps(r.Output) }

// Step returns the step called name.
func (r Result) Step(name string) (Step, bool) {
	for _, s := range r.Steps() {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// Run boots L1 under QEMU, runs cfg.Script there and returns its output and status. A
// script that fails is not an error (see Result.ExitCode); an L1 that cannot boot, load
// KVM, or finish in cfg.Timeout is. Cancelling ctx kills QEMU. Temporary files are
// removed before Run returns. L1s run one at a time on a machine: Run waits for any
// other lab run to finish first.
func Run(ctx context.Context, cfg Config) (Result, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	unlock, err := lock(ctx)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	start = time.Now() // the wait for another lab run is not this run's time
	f, err := newFrame()
	if err != nil {
		return Result{}, err
	}
	res := Result{frame: f}

	dir, err := os.MkdirTemp("", "hull-lab-")
	if err != nil {
		return res, fmt.Errorf("lab: %w", err)
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "l1.cpio")
	if err := writeFile(initrd, func(w io.Writer) error { return writeInitramfs(w, cfg, f) }); err != nil {
		return res, err
	}

	timeoutCtx, cancelTimeout := context.WithTimeout(ctx, cfg.Timeout)
	defer cancelTimeout()
	runCtx, cancel := context.WithCancelCause(timeoutCtx)
	defer cancel(nil)
	cmd := exec.CommandContext(runCtx, cfg.QEMU, cfg.qemuArgs(initrd)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, fmt.Errorf("lab: %w", err)
	}
	stderr := &tailBuffer{max: 64 << 10}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	// Should this process die without cleaning up (a test binary killed at its -timeout),
	// the kernel kills QEMU rather than leave it emulating L1 on a shared machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	qemuStart := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("lab: start %s: %w", cfg.QEMU, err)
	}
	// QEMU has read the initramfs into L1's memory before L1 prints anything: the
	// temporary folder goes at the first line, so that even a killed test leaves nothing.
	con := console{log: cfg.Log, init: f.marker("INIT") + " ", start: qemuStart,
		first: func() { os.RemoveAll(dir) }, lockup: func() { cancel(ErrLockup) }}
	if cfg.Silence > 0 {
		quiet := time.AfterFunc(cfg.Silence, func() { cancel(ErrSilent) })
		defer quiet.Stop()
		con.printed = func() { quiet.Reset(cfg.Silence) }
	}
	con.read(stdout)
	waitErr := cmd.Wait()
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		fmt.Fprintf(cfg.Log, "qemu stderr: %s\n", msg)
	}
	res.Console = con.transcript.String()
	res.BootTime = con.boot
	res.Total = time.Since(start)

	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("lab: cancelled: %w; L1 last printed:\n%s", ctx.Err(), con.tail(10))
	case errors.Is(context.Cause(runCtx), ErrLockup):
		return res, fmt.Errorf("lab: %w reported, L1 killed; it last printed:\n%s", ErrLockup, con.tail(10))
	case errors.Is(context.Cause(runCtx), ErrSilent):
		return res, fmt.Errorf("lab: %w for %v, L1 killed; it last printed:\n%s", ErrSilent, cfg.Silence, con.tail(10))
	case runCtx.Err() != nil:
		return res, fmt.Errorf("lab: L1 did not finish within %v and was killed (%w); it last printed:\n%s", cfg.Timeout, ErrTimeout, con.tail(10))
	case waitErr != nil:
		return res, fmt.Errorf("lab: %s: %w: %s", cfg.QEMU, waitErr, strings.TrimSpace(stderr.String()))
	}
	out, code, err := f.parse(res.Console)
	res.Output, res.ExitCode = out, code
	if err != nil {
		return res, fmt.Errorf("%w; L1 last printed:\n%s", err, con.tail(10))
	}
	return res, nil
}

func writeFile(name string, fill func(io.Writer) error) error {
	fh, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := fill(fh); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// console collects L1's serial output: it normalises line ends, copies each line to the
// log as it arrives, and notes when /init announced itself.
type console struct {
	log        io.Writer
	first      func() // called at the first line
	lockup     func() // called at a soft lockup report
	printed    func() // called at every line
	init       string
	start      time.Time
	boot       time.Duration
	transcript strings.Builder
	last       []string
}

func (c *console) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			c.line(line)
		}
		if err != nil {
			return
		}
	}
}

func (c *console) line(line string) {
	if c.first != nil {
		c.first()
		c.first = nil
	}
	if c.printed != nil {
		c.printed()
	}
	if strings.HasSuffix(line, "\r\n") {
		line = line[:len(line)-2] + "\n"
	}
	if c.boot == 0 && strings.HasPrefix(line, c.init) {
		c.boot = time.Since(c.start)
	}
	c.transcript.WriteString(line)
	fmt.Fprint(c.log, line)
	if c.lockup != nil && strings.Contains(line, lockupSign) {
		c.lockup()
		c.lockup = nil
	}
	c.last = append(c.last, strings.TrimRight(line, "\n"))
	if len(c.last) > 50 {
		c.last = c.last[len(c.last)-10:]
	}
}

// tail is the last n lines L1 printed, or a note that it printed nothing.
func (c *console) tail(n int) string {
	if len(c.last) == 0 {
		return "  (nothing)"
	}
	l := c.last
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return "  " + strings.Join(l, "\n  ")
}

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if t.buf.Len() > t.max {
		t.buf.Next(t.buf.Len() - t.max)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
