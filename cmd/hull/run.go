package main

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/term"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/bundle"
	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/container/runc"
	"github.com/hullvm/hull/host"
	"github.com/hullvm/hull/images"
	"github.com/hullvm/hull/kvm"
	"github.com/hullvm/hull/vmm"
)

// runOpts are the flags of `hull run` and `hull create`.
type runOpts struct {
	isolation   string
	remove      bool
	detach      bool
	interactive bool
	tty         bool
	env         []string
	workdir     string
	user        string
	volumes     []string
	memory      string
	cpus        float64
	network     string
	name        string
	hostname    string
	runtime     string
	cgroup      string
	pull        string
}

// Pull policies of run and create (--pull), Docker's.
const (
	pullMissing = "missing"
	pullAlways  = "always"
	pullNever   = "never"
)

func (o *runOpts) flags(f *pflag.FlagSet, run bool) {
	f.SetInterspersed(false) // flags after the image belong to its command
	f.StringVar(&o.isolation, "isolation", "auto", "isolation mode: auto, container or vm (auto picks vm where KVM can boot the guest, container otherwise)")
	f.BoolVar(&o.remove, "rm", false, "remove the container when it exits")
	if run {
		f.BoolVarP(&o.detach, "detach", "d", false, "run in the background and print the container ID; output goes to its log (hull logs)")
	}
	f.BoolVarP(&o.interactive, "interactive", "i", false, "keep standard input open and pass it to the container")
	f.BoolVarP(&o.tty, "tty", "t", false, "give the container a terminal")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set an environment variable K=V (K alone takes it from hull's environment)")
	f.StringVarP(&o.workdir, "workdir", "w", "", "working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "user as uid[:gid] or name[:group] from the image's /etc/passwd")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "bind mount a host directory SRC:DST[:ro]")
	f.StringVarP(&o.memory, "memory", "m", "", "memory limit such as 256m or 1g (no swap beyond it); over it the process is OOM-killed")
	f.Float64Var(&o.cpus, "cpus", 0, "CPU limit in CPUs, such as 1.5")
	f.StringVar(&o.network, "network", bundle.NetworkNone, "network: none (own namespace, loopback only) or host")
	f.StringVar(&o.name, "name", "", "container name (unique; default a random one)")
	f.StringVar(&o.hostname, "hostname", "", "container host name")
	f.StringVar(&o.runtime, "runtime", "runc", "OCI runtime for container isolation: runc or crun")
	f.StringVar(&o.cgroup, "cgroup-parent", "hull", "cgroup under which the container's cgroup is made")
	f.StringVar(&o.pull, "pull", pullMissing, "pull the image from its registry: missing (when not stored), always or never")
}

// config turns the flags and arguments into a container config.
func (o *runOpts) config(args []string) (container.Config, error) {
	cfg := container.Config{Image: args[0], Name: o.name, Runtime: o.runtime, Remove: o.remove, Detach: o.detach, CgroupParent: o.cgroup}
	switch o.pull {
	case pullMissing, pullAlways, pullNever:
	default:
		return cfg, fmt.Errorf("--pull %q: use missing, always or never", o.pull)
	}
	b := bundle.Options{Args: args[1:], Workdir: o.workdir, User: o.user, Hostname: o.hostname, Terminal: o.tty, CPUs: o.cpus, Network: o.network}
	for _, e := range o.env {
		if strings.Contains(e, "=") {
			b.Env = append(b.Env, e)
		} else if v, ok := os.LookupEnv(e); ok {
			b.Env = append(b.Env, e+"="+v)
		}
	}
	for _, v := range o.volumes {
		m, err := bundle.ParseMount(v)
		if err != nil {
			return cfg, err
		}
		if !filepath.IsAbs(m.Source) {
			if !strings.HasPrefix(m.Source, ".") {
				return cfg, fmt.Errorf("volume %q: named volumes are not supported: give a host path (absolute, or starting with .)", v)
			}
			abs, err := filepath.Abs(m.Source)
			if err != nil {
				return cfg, fmt.Errorf("volume %q: %w", v, err)
			}
			m.Source = abs
		}
		if _, err := os.Stat(m.Source); err != nil {
			return cfg, fmt.Errorf("volume %q: %w", v, err)
		}
		b.Mounts = append(b.Mounts, m)
	}
	if o.memory != "" {
		n, err := bundle.ParseBytes(o.memory)
		if err != nil {
			return cfg, fmt.Errorf("--memory: %w", err)
		}
		b.Memory = n
	}
	cfg.Bundle = b
	return cfg, b.Validate()
}

// newRunCmd is `hull run`: create a container from an image and start it.
func newRunCmd(g *globals, io stdio) *cobra.Command {
	var o runOpts
	c := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a container from an image",
		Long: "run creates a container from IMAGE and runs COMMAND (default: the image's Entrypoint and\n" +
			"Cmd) in it, as a shared-kernel container (an OCI runtime, runc or crun, over an overlay of\n" +
			"the image's layer disks) or in a KVM microVM (--isolation vm), from the same OCI bundle.\n" +
			"Without -d, hull waits, forwards signals and exits with the container's status; with -d\n" +
			"it prints the container's ID and the container's output goes to its log (hull logs).\n" +
			"Exit status: 125 when hull fails, 126 when the command cannot run, 127 when it does not\n" +
			"exist, the container's status otherwise. See docs/run.md.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd.Context(), g, io, &o, args, true)
		},
	}
	o.flags(c.Flags(), true)
	return c
}

// newCreateCmd is `hull create`: create a container without starting it.
func newCreateCmd(g *globals, io stdio) *cobra.Command {
	var o runOpts
	c := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container without starting it",
		Long: "create prepares a container as hull run would (root filesystem, OCI bundle) and prints\n" +
			"its ID; hull start runs it in the background.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd.Context(), g, io, &o, args, false)
		},
	}
	o.flags(c.Flags(), false)
	return c
}

// newShimCmd is the hidden `hull container-shim ID`, which `run -d` and `start` start in
// a new session: it stays the detached container's parent, keeps its output in the log
// and records its exit status. File descriptor 3 is the ready pipe.
func newShimCmd(g *globals, io stdio) *cobra.Command {
	return &cobra.Command{
		Use:    "container-shim ID",
		Short:  "Supervise a detached container (internal)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGTERM)
			ready := os.NewFile(3, "ready")
			m, err := newManager(g, io)
			if err != nil {
				fmt.Fprintln(ready, err)
				return err
			}
			if err := container.Subreaper(); err != nil {
				fmt.Fprintln(ready, err)
				return err
			}
			return m.Supervise(context.WithoutCancel(cmd.Context()), args[0], ready)
		},
	}
}

// newManager returns the container manager under --root.
func newManager(g *globals, io stdio) (*container.Manager, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find hull's executable: %w", err)
	}
	lvl := slog.LevelWarn
	if g.debug {
		lvl = slog.LevelDebug
	}
	root, err := filepath.Abs(g.root)
	if err != nil {
		return nil, err
	}
	shim := []string{exe, "--root", root}
	if g.debug {
		shim = append(shim, "--debug")
	}
	return &container.Manager{
		Root:   root,
		Images: &storeImages{g: g, io: io},
		Runtime: func(name string) (container.Runtime, error) {
			if name == "vm" {
				return newVMRuntime(g, io, lvl)
			}
			return newRuntime(root, name)
		},
		Shim: append(shim, "container-shim"),
		Log:  slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: lvl})),
	}, nil
}

// newRuntime returns the shared-kernel runtime a container records: runc or crun.
func newRuntime(root, name string) (container.Runtime, error) {
	switch name {
	case "runc", "crun":
		return runc.New(name, filepath.Join(root, "runtime", name))
	}
	return nil, fmt.Errorf("runtime %q is not supported: use runc or crun", name)
}

// decideIsolation resolves --isolation. For auto it asks probe (the host's verdict,
// which costs tens of milliseconds) and says which mode it picked and why. A VM has no
// way into the host's network namespace, so --network host (hostNet) rules VM mode out.
func decideIsolation(flag string, hostNet bool, probe func() (mode, reason string)) (mode, why string, err error) {
	switch flag {
	case container.IsolationContainer:
		return flag, "", nil
	case container.IsolationVM:
		if hostNet {
			return "", "", errors.New("--network host shares the host's network namespace, which a VM container cannot: use --isolation container, or --network none")
		}
		return flag, "", nil
	case "auto", "":
	default:
		return "", "", fmt.Errorf("--isolation %q: use auto, container or vm", flag)
	}
	if hostNet {
		return container.IsolationContainer, "container isolation: --network host shares the host's network, which a VM container cannot", nil
	}
	mode, reason := probe()
	if mode == host.VM {
		return container.IsolationVM, "VM isolation: " + reason, nil
	}
	return container.IsolationContainer, "container isolation: " + reason, nil
}

// bootable refuses VM mode where the guest kernel cannot boot: a PVM host boots only
// kernels built as PVM guests, and a Linux kernel that is not one hangs there with no
// output, which a container start must not do.
func bootable(kernel string) error {
	if !kvm.IsPVM() {
		return nil
	}
	if linux, err := vmm.LinuxKernel(kernel); err != nil || !linux {
		return nil // not there or not Linux: the VM runtime says what is wrong
	}
	return fmt.Errorf("--isolation vm: this host's KVM is PVM (/sys/module/kvm_pvm), which boots only PVM guest kernels, and the guest kernel %s is not one: "+
		"use --isolation container (or auto, which picks it here), or VM mode in the nested lab (hull lab run) or on a host with VT-x or AMD-V", kernel)
}

// storeImages serves the image store to the container manager, pulling images as
// the pull policy says (a pull policy "" is never).
type storeImages struct {
	g    *globals
	io   stdio
	pull string
}

func (s *storeImages) Image(ctx context.Context, ref string) (*container.Image, error) {
	st, done, err := openImages(s.g, s.io, false)
	if err != nil {
		return nil, err
	}
	defer done()
	var img *images.Image
	if s.pull != pullAlways {
		img, err = st.Get(ctx, ref)
	}
	if s.pull == pullAlways || (s.pull == pullMissing && errors.Is(err, images.ErrNotFound)) {
		if s.pull == pullMissing {
			fmt.Fprintf(s.io.err, "Unable to find image '%s' locally\n", ref) // as Docker says it
		}
		if img, err = st.Pull(ctx, ref); err != nil {
			if s.pull == pullMissing {
				return nil, fmt.Errorf("image %s is not stored here (hull images), and pulling it failed: %w; "+
					"for an image that is in no registry: hull load -i FILE or hull import", ref, err)
			}
			return nil, err
		}
		pulled(s.io.err, img, ref)
	}
	if err != nil {
		return nil, err
	}
	disks, err := st.Disks(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("layer disks of %s: %w", ref, err)
	}
	return &container.Image{ID: img.ID.String(), Config: img.Config, Disks: disks}, nil
}

func runRun(ctx context.Context, g *globals, io stdio, o *runOpts, args []string, start bool) error {
	cfg, err := o.config(args)
	if err != nil {
		return err
	}
	mode, why, err := decideIsolation(o.isolation, o.network == bundle.NetworkHost, func() (string, string) {
		env := host.System(g.cache)
		env.Version = nil // the verdicts need no tool versions: saves three execs
		return host.Probe(ctx, env).Isolation()
	})
	if err != nil {
		return err
	}
	if why != "" {
		fmt.Fprintf(io.err, "hull: %s\n", why)
	}
	cfg.Isolation = mode
	if mode == container.IsolationVM {
		if err := bootable(cache.Dir(g.cache).BootKernel()); err != nil {
			return err
		}
		cfg.Runtime = "vm"
	} else {
		// A container-mode hull only prepares, waits and cleans up, one step at a
		// time: with one P the Go scheduler stops waking a second thread at every
		// goroutine handoff, about a tenth of hull's CPU time per container.
		runtime.GOMAXPROCS(1)
	}
	if o.tty && o.interactive && start && !o.detach {
		if _, ok := terminalFd(io.in); !ok {
			return errors.New("the input device is not a TTY: drop -t, or run hull from a terminal")
		}
	}
	m, err := newManager(g, io)
	if err != nil {
		return err
	}
	m.Images = &storeImages{g: g, io: io, pull: o.pull}
	foreground := start && !o.detach
	streams := container.IO{Out: io.out, Err: io.err}
	if o.interactive {
		streams.In = io.in
	}
	if foreground {
		if err := container.Subreaper(); err != nil {
			return err
		}
		if !o.tty {
			// The runtime may start while the container is made (container.Launcher).
			cfg.Launch = &streams
		}
	}
	c, err := m.Create(ctx, cfg)
	if err != nil {
		return err
	}
	if !start {
		fmt.Fprintln(io.out, c.ID)
		return nil
	}
	if o.detach {
		if err := m.StartDetached(ctx, c); err != nil {
			if c.Remove {
				m.Remove(context.WithoutCancel(ctx), c.ID, true)
			}
			return startError(io, err)
		}
		fmt.Fprintln(io.out, c.ID)
		return nil
	}
	return runForeground(ctx, m, c, io, streams)
}

// runForeground runs c attached to hull's standard streams (streams: the same Create
// was given to launch the runtime early; with -i, streams.In is hull's) and exits with
// its status. The caller made hull a child subreaper.
func runForeground(ctx context.Context, m *container.Manager, c *container.Container, io stdio, streams container.IO) error {
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigc)
	sig := container.Signals{Signal: sigc}
	if c.TTY {
		if fd, ok := terminalFd(io.out); ok {
			streams.Size = winsize(fd)
			resize := make(chan container.Winsize, 1)
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for range winch {
					select {
					case resize <- winsize(fd):
					default:
					}
				}
			}()
			sig.Resize = resize
		}
		if fd, ok := terminalFd(io.in); ok && streams.In != nil {
			restore, err := rawTerminal(fd)
			if err != nil {
				return err
			}
			defer restore()
		}
	}
	code, err := m.Run(context.WithoutCancel(ctx), c, streams, sig)
	if err != nil {
		return startError(io, err)
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}

// startError gives the exit status Docker gives a container that could not start:
// 127 when its command does not exist, 126 when it cannot be executed.
func startError(io stdio, err error) error {
	code := 0
	switch {
	case errors.Is(err, container.ErrCommandNotFound):
		code = exitNotFound
	case errors.Is(err, container.ErrCannotExec):
		code = exitCannotExec
	default:
		return err
	}
	fmt.Fprintf(io.err, "hull: %v\n", err)
	return exitError{code}
}

// terminalFd returns the descriptor of f when it is a terminal.
func terminalFd(f any) (int, bool) {
	file, ok := f.(*os.File)
	if !ok {
		return 0, false
	}
	if _, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS); err != nil {
		return 0, false
	}
	return int(file.Fd()), true
}

func winsize(fd int) container.Winsize {
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return container.Winsize{}
	}
	return container.Winsize{Rows: ws.Row, Cols: ws.Col}
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
