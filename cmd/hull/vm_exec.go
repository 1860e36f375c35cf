package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/container/microvm"
	"github.com/hullvm/hull/guest"
)

// vmExecOpts are the flags of `hull vm exec`.
type vmExecOpts struct {
	kernel, initrd, cmdline, memory, console string
	disks, env                               []string
	cpus                                     int
	interactive, timings                     bool
	workdir                                  string
}

func newVMExecCmd(g *globals, io stdio) *cobra.Command {
	var o vmExecOpts
	c := &cobra.Command{
		Use:   "exec [flags] -- COMMAND [ARG...]",
		Short: "Boot a microVM with disks and run one command through the guest agent",
		Long: `Boot the guest kernel and hull's initramfs (whose /init is the agent hull-init) with the
given disks, run COMMAND in the guest with hull's standard streams, and exit with its
status when the VM has ended. Disks with ids hull-layer-0, hull-layer-1... (base first)
form the root filesystem as an overlay, with hull-scratch (an ext4 disk) as its writable
layer when given, else a tmpfs; without layer disks COMMAND runs in the initramfs.

Exit status: COMMAND's, 127 when it does not exist, 126 when it cannot run, 125 when the
VM or the agent failed. See docs/vm-mode.md.`,
		Example: `  hull vm exec --disk /var/lib/hull/layers/<digest>.erofs,ro,id=hull-layer-0 -- echo hello
  echo hi | hull vm exec -i --disk base.erofs,ro,id=hull-layer-0 -- cat`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runVMExec(c.Context(), g, io, o, args)
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.StringVar(&o.kernel, "kernel", "", "guest kernel: bzImage or PVH vmlinux (default: the cache's)")
	f.StringVar(&o.initrd, "initrd", "", "initramfs with hull-init (default: the cache's)")
	f.StringVar(&o.cmdline, "cmdline", microvm.DefaultCmdline, "kernel command line (the VMM adds its device entries)")
	f.StringArrayVar(&o.disks, "disk", nil, "attach a virtio-blk disk: PATH[,ro][,id=NAME] (repeatable)")
	f.IntVar(&o.cpus, "cpus", 1, "number of vCPUs")
	f.StringVarP(&o.memory, "memory", "m", "256M", "guest memory: a size with a unit (512M, 1G) or a number of MiB")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "pass standard input to the command (else it reads /dev/null)")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set an environment variable K=V")
	f.StringVarP(&o.workdir, "workdir", "w", "/", "working directory in the guest")
	f.StringVar(&o.console, "console", "", "write the guest's serial console (kernel and agent log) to this file")
	f.BoolVar(&o.timings, "timings", false, "print the boot, agent-ready, exit and shutdown times to standard error")
	return c
}

func runVMExec(ctx context.Context, g *globals, io stdio, o vmExecOpts, args []string) error {
	mib, err := parseMiB(o.memory)
	if err != nil {
		return err
	}
	d := cache.Dir(g.cache)
	cfg := microvm.Config{Kernel: o.kernel, Initrd: o.initrd, Cmdline: o.cmdline, CPUs: o.cpus, MemoryMiB: mib}
	if cfg.Kernel == "" {
		cfg.Kernel = d.BootKernel()
		if err := cache.Need(cfg.Kernel, "the guest kernel"); err != nil {
			return fmt.Errorf("%w (or pass --kernel)", err)
		}
	}
	if cfg.Initrd == "" {
		cfg.Initrd = d.Initramfs()
		if err := cache.Need(cfg.Initrd, "the initramfs"); err != nil {
			return fmt.Errorf("%w (or pass --initrd)", err)
		}
	}
	for _, s := range o.disks {
		disk, err := parseDisk(s)
		if err != nil {
			return err
		}
		cfg.Disks = append(cfg.Disks, disk)
	}
	layers, scratch, err := microvm.SplitDisks(cfg.Disks)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "hull-vm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg.Socket = filepath.Join(tmp, "vsock.sock")
	if o.console != "" {
		f, err := os.OpenFile(o.console, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("--console: %w", err)
		}
		defer f.Close()
		cfg.Console = f
	}
	level := slog.LevelWarn
	if g.debug {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: level}))
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	env = append(env, o.env...)
	spec := &specs.Spec{
		Version:  specs.Version,
		Process:  &specs.Process{Args: args, Env: env, Cwd: o.workdir},
		Hostname: "hull",
	}
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigc)
	sigs := make(chan syscall.Signal, 8)
	go func() {
		for s := range sigc {
			if n, ok := s.(syscall.Signal); ok {
				select {
				case sigs <- n:
				default:
				}
			}
		}
	}()
	gs := guest.Stdio{Stdout: io.out, Stderr: io.err, Signals: sigs}
	if o.interactive {
		gs.Stdin = io.in
	}
	ex, tm, err := microvm.Exec(context.WithoutCancel(ctx), microvm.ExecConfig{
		VM: cfg, Run: guest.Run{Spec: spec, Layers: layers, Scratch: scratch},
	}, gs)
	if o.timings {
		fmt.Fprintf(io.err, "hull: timings: boot %.3f s, agent ready %.3f s, exit status %.3f s, VM down %.3f s\n",
			tm.Boot.Seconds(), tm.Ready.Seconds(), tm.Exit.Seconds(), tm.Down.Seconds())
	}
	if err != nil {
		if errors.Is(err, microvm.ErrVMEnded) && o.console == "" {
			return fmt.Errorf("%w\nRun again with --console FILE to see the guest's log.", err)
		}
		return err
	}
	if gerr := ex.Err(); gerr != nil {
		fmt.Fprintf(io.err, "hull: %v\n", gerr)
	}
	if ex.Status != 0 {
		return exitError{ex.Status}
	}
	return nil
}
