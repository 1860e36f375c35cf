// Command hull-vmm is hull's virtual machine monitor as a process of its own, as
// Firecracker's VMM is: it boots one microVM with package vmm and nothing else of hull's
// (no CLI framework, no image, registry or container code), so the process that lives
// as long as the VM starts fast and stays small. `hull vm run` runs the same VMM in
// the CLI's own process (docs/vmm.md says why); hull-vmm is for callers that start one
// process per VM.
//
// Usage:
//
//	hull-vmm --kernel PATH [--initrd PATH] [--cmdline S] [--cpus N] [--memory SIZE]
//	         [--disk PATH[,ro][,id=NAME]]... [--rng] [--vsock CID,PATH] [--debug]
//
// The serial console is on stdin and stdout; on a terminal stdin is put in raw mode
// and Ctrl-A x stops the VM. Exit status: 0 when the guest powers off or resets,
// (v<<1)|1 when it writes v to the debug-exit port 0xf4, 125 when the guest fails or
// hull-vmm does, 130 when interrupted.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"golang.org/x/term"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/hullvm/hull/kvm"
	"github.com/hullvm/hull/vmm"
)

// Exit statuses besides the guest's.
const (
	exitFailed      = 125
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// opts are hull-vmm's flags, named as `hull vm run`'s.
type opts struct {
	cfg   vmm.Config
	debug bool
}

// parse reads the flags into a config; it does not touch the host.
func parse(args []string, stderr io.Writer) (opts, error) {
	var o opts
	fs := flag.NewFlagSet("hull-vmm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.cfg.Kernel, "kernel", "", "kernel: bzImage or PVH ELF (required)")
	fs.StringVar(&o.cfg.Initrd, "initrd", "", "initramfs")
	fs.StringVar(&o.cfg.Cmdline, "cmdline", vmm.DefaultCmdline, "kernel command line")
	fs.IntVar(&o.cfg.CPUs, "cpus", 1, "number of vCPUs")
	memory := "256M"
	setMemory := func(s string) error {
		memory = s
		return nil
	}
	fs.Func("memory", "guest memory: a size with a unit (512M, 1G) or a number of MiB (default 256M)", setMemory)
	fs.Func("m", "shorthand for --memory", setMemory)
	fs.Func("disk", "attach a virtio-blk disk: PATH[,ro][,id=NAME] (repeatable)", func(s string) error {
		d, err := vmm.ParseDisk(s)
		if err != nil {
			return err
		}
		o.cfg.Disks = append(o.cfg.Disks, d)
		return nil
	})
	fs.BoolVar(&o.cfg.RNG, "rng", false, "attach a virtio-rng device")
	fs.Func("vsock", "attach a virtio-vsock device: CID,PATH (the guest's context ID, the host's Unix socket)", func(s string) error {
		cid, path, ok := strings.Cut(s, ",")
		n, err := strconv.ParseUint(cid, 10, 32)
		if !ok || err != nil || path == "" {
			return fmt.Errorf("--vsock %q: want CID,PATH (for example 3,/run/vm.sock)", s)
		}
		o.cfg.Vsock = &vmm.Vsock{CID: uint32(n), UDS: path}
		return nil
	})
	fs.BoolVar(&o.debug, "debug", false, "log debug messages, and the VMM's peak memory at the end")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: hull-vmm takes only flags (see --help)", fs.Arg(0))
	}
	mib, err := vmm.ParseMemory(memory)
	if err != nil {
		return o, err
	}
	o.cfg.MemoryMiB = mib
	return o, o.cfg.Validate()
}

func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "hull-vmm: %v\n", err)
		return exitFailed
	}
	level := slog.LevelWarn
	if o.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	code, err := boot(ctx, o.cfg, log, stdin, stdout, stderr)
	if o.debug {
		if kib, err := peakRSS(); err == nil {
			log.Debug("vmm process", "peak_rss_kib", kib)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "hull-vmm: %v\n", err)
		return exitFailed
	}
	return code
}

// boot runs the machine with the console on stdin and stdout and returns the exit
// status.
func boot(ctx context.Context, cfg vmm.Config, log *slog.Logger, stdin *os.File, stdout, stderr io.Writer) (int, error) {
	cfg.Console, cfg.ConsoleIn, cfg.Log = stdout, stdin, log
	if kvm.IsPVM() {
		if linux, err := vmm.LinuxKernel(cfg.Kernel); err == nil && linux {
			fmt.Fprintf(stderr, "hull-vmm: warning: this host's KVM is PVM (/sys/module/kvm_pvm): only kernels built as PVM guests boot here, %s will most likely hang.\n"+
				"hull-vmm: boot it in the nested lab (make lab-smoke) or on a host with VT-x or AMD-V.\n", cfg.Kernel)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if restore, err := rawTerminal(int(stdin.Fd())); err == nil { // fails unless a terminal
		defer restore()
		fmt.Fprintln(stderr, "hull-vmm: console attached (raw); press Ctrl-A x to stop the VM\r")
		cfg.ConsoleIn = &vmm.EscapeReader{R: stdin, Stop: cancel}
	}
	m, err := vmm.New(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("create VM: %w", err)
	}
	defer m.Close()
	exit, err := m.Run(ctx)
	if err != nil {
		if errors.Is(err, vmm.ErrTripleFault) {
			return 0, fmt.Errorf("%w\nThe guest crashed: check that the kernel is built for x86-64 and its command line (add earlyprintk=serial to see how far it got).", err)
		}
		return 0, err
	}
	if exit.Reason == vmm.Canceled {
		fmt.Fprintln(stderr, "hull-vmm: VM stopped: interrupted\r")
		return exitInterrupted, nil
	}
	return exit.Code, nil
}

// rawTerminal puts the terminal fd in raw mode (cfmakeraw(3): no echo, no line editing,
// keys such as Ctrl-C go through as bytes) and returns how to restore it.
func rawTerminal(fd int) (func(), error) {
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal raw mode: %w", err)
	}
	return func() { term.Restore(fd, old) }, nil
}

// peakRSS is this process's peak resident set in KiB since its last exec (VmHWM),
// unlike getrusage's maxrss, which carries the peak of the image before an exec.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:")); ok {
			f := bytes.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(string(f[0]), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
