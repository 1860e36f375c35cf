package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/kvm"
	"github.com/hullvm/hull/vmm"
)

// newVMCmd is `hull vm`: the microVM monitor on its own, without images or containers.
func newVMCmd(g *globals, io stdio) *cobra.Command {
	c := &cobra.Command{
		Use:   "vm",
		Short: "Run a kernel in a KVM microVM directly",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newVMRunCmd(g, io), newVMExecCmd(g, io))
	return c
}

// vmRunOpts are the flags of `hull vm run`.
type vmRunOpts struct {
	kernel, initrd, cmdline, memory string
	disks                           []string
	cpus                            int
	rng                             bool
	taps                            []string
}

func newVMRunCmd(g *globals, io stdio) *cobra.Command {
	var o vmRunOpts
	c := &cobra.Command{
		Use:   "run [flags]",
		Short: "Boot a kernel in a microVM with the serial console on stdio",
		Long: `Boot a Linux kernel (bzImage, or an ELF vmlinux with a PVH entry) or a freestanding PVH
guest in a KVM microVM: 8250 serial console on stdin/stdout, virtio-blk disks, i8042 reset.

The exit status is 0 when the guest powers off or reboots (reboot=k), (v<<1)|1 when it
writes v to the debug-exit port 0xf4 (as QEMU's isa-debug-exit), 125 when the guest
triple-faults or hull fails, and 130 when interrupted.`,
		Example: `  hull vm run --kernel bzImage --initrd initramfs.cpio.gz --cpus 2 --memory 512M
  hull vm run --kernel vmlinux --disk rootfs.img,id=root --cmdline "console=ttyS0 reboot=k panic=-1 root=/dev/vda"`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runVM(c.Context(), g, io, o, c.Flags().Changed("initrd"))
		},
	}
	f := c.Flags()
	f.StringVar(&o.kernel, "kernel", "", "kernel: bzImage or PVH ELF (default: the cache's guest kernel)")
	f.StringVar(&o.initrd, "initrd", "", "initramfs (default with the cache's kernel: the cache's initramfs, if present)")
	f.StringVar(&o.cmdline, "cmdline", vmm.DefaultCmdline, "kernel command line")
	f.StringArrayVar(&o.disks, "disk", nil, "attach a virtio-blk disk: PATH[,ro][,id=NAME] (repeatable; /dev/vda, /dev/vdb...)")
	f.IntVar(&o.cpus, "cpus", 1, "number of vCPUs")
	f.StringVarP(&o.memory, "memory", "m", "256M", "guest memory: a size with a unit (512M, 1G) or a number of MiB")
	f.BoolVar(&o.rng, "rng", false, "attach a virtio-rng device")
	f.StringArrayVar(&o.taps, "tap", nil, "attach a virtio-net device backed by this tap interface (created if missing; repeatable)")
	return c
}

// runVM builds the config, warns on PVM hosts, and runs the machine to its end.
func runVM(ctx context.Context, g *globals, io stdio, o vmRunOpts, initrdSet bool) error {
	mib, err := parseMiB(o.memory)
	if err != nil {
		return err
	}
	cfg := vmm.Config{Kernel: o.kernel, Initrd: o.initrd, Cmdline: o.cmdline, CPUs: o.cpus, MemoryMiB: mib,
		RNG: o.rng, Console: io.out, ConsoleIn: io.in}
	for _, t := range o.taps {
		cfg.Nets = append(cfg.Nets, vmm.Net{Tap: t})
	}
	if cfg.Kernel == "" {
		d := cache.Dir(g.cache)
		cfg.Kernel = d.BootKernel()
		if err := cache.Need(cfg.Kernel, "the guest kernel"); err != nil {
			return fmt.Errorf("%w (or pass --kernel)", err)
		}
		if !initrdSet && cache.Need(d.Initramfs(), "the initramfs") == nil {
			cfg.Initrd = d.Initramfs()
		}
	}
	for _, s := range o.disks {
		d, err := parseDisk(s)
		if err != nil {
			return err
		}
		cfg.Disks = append(cfg.Disks, d)
	}
	level := slog.LevelWarn
	if g.debug {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: level}))
	if err := cfg.Validate(); err != nil {
		return err
	}
	if kvm.IsPVM() {
		if linux, err := vmm.LinuxKernel(cfg.Kernel); err == nil && linux {
			fmt.Fprintf(io.err, "hull: warning: this host's KVM is PVM (/sys/module/kvm_pvm): only kernels built as PVM guests boot here, %s will most likely hang.\n"+
				"hull: boot it in the nested lab (make lab-smoke) or on a host with VT-x or AMD-V.\n", cfg.Kernel)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	restore := func() {}
	if f, ok := io.in.(*os.File); ok {
		if r, err := rawTerminal(int(f.Fd())); err == nil { // from run.go; fails unless a terminal
			restore = sync.OnceFunc(r)
			defer restore()
			fmt.Fprintln(io.err, "hull: console attached (raw); press Ctrl-A x to stop the VM\r")
			cfg.ConsoleIn = &escapeReader{r: f, stop: cancel}
		}
	}
	m, err := vmm.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create VM: %w", err)
	}
	defer m.Close()
	exit, err := m.Run(ctx)
	restore()
	if err != nil {
		if errors.Is(err, vmm.ErrTripleFault) {
			return fmt.Errorf("%w\nThe guest crashed: check that the kernel is built for x86-64 and its command line (add earlyprintk=serial to see how far it got).", err)
		}
		return err
	}
	if exit.Reason == vmm.Canceled {
		fmt.Fprintln(io.err, "hull: VM stopped: interrupted")
	}
	if exit.Code != 0 {
		return exitError{exit.Code}
	}
	return nil
}

// parseDisk parses PATH[,ro][,id=NAME] (vmm.ParseDisk, shared with hull-vmm).
func parseDisk(s string) (vmm.Disk, error) { return vmm.ParseDisk(s) }

// parseMiB parses a memory size into MiB (vmm.ParseMemory, shared with hull-vmm).
func parseMiB(s string) (int, error) { return vmm.ParseMemory(s) }

// escapeReader is vmm.EscapeReader, the console's Ctrl-A x escape, built from r and
// stop on first use.
type escapeReader struct {
	r    io.Reader
	stop func()
	e    *vmm.EscapeReader
}

func (e *escapeReader) Read(p []byte) (int, error) {
	if e.e == nil {
		e.e = &vmm.EscapeReader{R: e.r, Stop: e.stop}
	}
	return e.e.Read(p)
}
