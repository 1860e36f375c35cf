package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/lab"
)

func newLabCmd(g *globals, io stdio) *cobra.Command {
	c := &cobra.Command{
		Use:   "lab",
		Short: "Run commands in the nested KVM lab (for hosts whose KVM cannot boot Linux)",
		Long: `The nested lab boots a Linux (L1) under QEMU's software emulation of a CPU with AMD-V,
loads kvm-amd there, and runs commands with a real /dev/kvm in which hull's VMM boots
Linux guests. It is how VM mode runs on hosts whose KVM is PVM (see 'hull doctor').
Absolute times in the lab are meaningless; compare ratios measured in one lab run.`,
	}
	c.AddCommand(newLabRunCmd(g, io))
	return c
}

func newLabRunCmd(g *globals, io stdio) *cobra.Command {
	var (
		files   []string
		timeout time.Duration
		memory  int
		cpus    int
		console bool
	)
	c := &cobra.Command{
		Use:   "run [flags] -- SCRIPT",
		Short: "Boot the lab with hull, the guest kernel, initramfs and busybox image inside, and run SCRIPT",
		Long: `Boot the nested lab and run SCRIPT (busybox sh) as root in L1. The payload under /payload
holds this hull binary (on PATH), the guest kernel and initramfs and the busybox image
(loaded into L1's store before SCRIPT runs), and every --file. The exit status is
SCRIPT's.`,
		Example: `  hull lab run -- hull run --rm --isolation vm busybox uname -r
  hull lab run --file ./disk.img:disk.img -- 'hull vm exec --disk disk.img,ro,id=hull-layer-0 -- ls /'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := cache.Dir(g.cache)
			payload, err := labPayload(d, files)
			if err != nil {
				return err
			}
			cfg := lab.Default(d)
			cfg.Payload = payload
			cfg.Timeout, cfg.Memory, cfg.CPUs = timeout, memory, cpus
			cfg.Script = "export PATH=/payload:$PATH HULL_CACHE=/payload/cache\n" +
				"hull load -q -i /payload/cache/images/busybox-oci >/dev/null || exit 125\n" +
				strings.Join(args, " ") + "\n"
			if console {
				cfg.Log = io.err
			}
			res, err := lab.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(io.out, res.Output)
			if res.Output != "" && !strings.HasSuffix(res.Output, "\n") {
				fmt.Fprintln(io.out)
			}
			fmt.Fprintf(io.err, "lab: L1 booted in %v, whole run %v (TCG emulation: compare ratios, not times)\n",
				res.BootTime.Round(time.Millisecond), res.Total.Round(time.Millisecond))
			if res.ExitCode != 0 {
				return exitError{res.ExitCode}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&files, "file", nil, "copy a host file into L1: HOST[:L1PATH] (relative L1 paths are under /payload)")
	f.DurationVar(&timeout, "timeout", lab.DefaultTimeout, "kill L1 after this long")
	f.IntVar(&memory, "memory", lab.DefaultMemory, "L1 memory in MiB")
	f.IntVar(&cpus, "cpus", lab.DefaultCPUs, "L1 vCPUs")
	f.BoolVar(&console, "console", false, "stream L1's serial console to stderr")
	return c
}

// labPayload is this hull binary, the guest kernel, initramfs and the busybox image
// from the cache d, and the user's files.
func labPayload(d cache.Dir, files []string) (map[string]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the hull binary: %w", err)
	}
	if err := requireStatic(self); err != nil {
		return nil, err
	}
	pl := map[string]string{
		"hull":                            self,
		labKernelPath(d):                  d.BootKernel(),
		"cache/initramfs/current.cpio.gz": d.Initramfs(),
	}
	for path, what := range map[string]string{d.BootKernel(): "guest kernel", d.Initramfs(): "initramfs", d.BusyboxImage(): "busybox image"} {
		if err := cache.Need(path, what); err != nil {
			return nil, err
		}
	}
	if err := lab.AddTree(pl, d.BusyboxImage(), "cache/images/busybox-oci"); err != nil {
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	// Tools hull runs that L1's busybox lacks, with their libraries: layer disks, scratch
	// and volume disks, and debugfs to copy a writable volume back out of its disk.
	for l1, bin := range map[string]string{"/usr/bin/mkfs.erofs": "mkfs.erofs", "/sbin/mkfs.ext4": "mkfs.ext4", "/sbin/debugfs": "debugfs"} {
		p, err := exec.LookPath(bin)
		if err != nil {
			return nil, fmt.Errorf("%s not found: apt-get install erofs-utils e2fsprogs (scripts/setup does)", bin)
		}
		if err := lab.AddBinary(pl, p, l1); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		host, guest, ok := strings.Cut(f, ":")
		if !ok {
			guest = filepath.Base(host)
		}
		if host == "" || guest == "" {
			return nil, fmt.Errorf("--file %q: want HOST[:L1PATH]", f)
		}
		pl[guest] = host
	}
	return pl, nil
}

// requireStatic refuses a dynamically linked hull: L1 has no C library.
func requireStatic(bin string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("read %s: %w", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("this hull binary is dynamically linked and L1 has no C library: build it with CGO_ENABLED=0 (make build does)")
		}
	}
	return nil
}

// labKernelPath is where the payload holds the guest kernel hull boots by default
// (cache.Dir.BootKernel), under the cache layout hull in L1 looks in.
func labKernelPath(d cache.Dir) string {
	return path.Join("cache/kernel/current", filepath.Base(d.BootKernel()))
}
