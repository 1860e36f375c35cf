package microvm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/bundle"
	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/guest"
	"github.com/hullvm/hull/vmm"
)

// Sizing of a container's VM.
const (
	// DefaultMemoryMiB is the guest RAM of a container without --memory. Guest RAM is
	// reserved, not touched: the host pays for what the guest uses.
	DefaultMemoryMiB = 512
	// HeadroomMiB is added to a --memory limit for the guest kernel, the agent and the
	// page cache, so that the limit (a memory cgroup in the guest) is what the process
	// gets, as in container mode.
	HeadroomMiB = 128
	// DefaultScratchSize is the scratch disk's size (sparse): what a container can
	// write to its root filesystem.
	DefaultScratchSize = 8 << 30
)

// StartTimeout bounds a container's start in its VM: from booting the VM to the agent
// starting the process. A guest kernel that cannot boot on the host's KVM hangs
// without a word; the nested lab boots one in a few seconds of emulated time.
const StartTimeout = 2 * time.Minute

// Files in the container's directory.
const (
	scratchFile = "scratch.img"
	consoleFile = "console.log"
	vsockFile   = "vsock"
	ctlFile     = "ctl.sock"
)

// Runtime runs bundles in microVMs: Runtime.Name is "vm".
type Runtime struct {
	Kernel, Initrd string
	Tools          Tools
	// ScratchSize is the scratch disk's size; 0 is DefaultScratchSize.
	ScratchSize int64
	Log         *slog.Logger
}

// New returns the VM runtime booting kernel with initrd; the e2fsprogs tools are found
// on PATH.
func New(kernel, initrd string, log *slog.Logger) (*Runtime, error) {
	for _, f := range []struct{ path, what string }{{kernel, "guest kernel"}, {initrd, "initramfs"}} {
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("VM mode needs the %s: %w (run scripts/setup, or use --isolation container)", f.what, err)
		}
	}
	t, err := FindTools()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{Kernel: kernel, Initrd: initrd, Tools: t, Log: log}, nil
}

func (r *Runtime) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Name implements container.Runtime.
func (r *Runtime) Name() string { return "vm" }

// Prepare makes the scratch disk. The root filesystem itself is only built inside the
// guest; so that --user can name a user of the image's /etc/passwd, the layers are
// also mounted on the host when it can (loop devices), else rootfs is "".
func (r *Runtime) Prepare(ctx context.Context, c *container.Container) (string, error) {
	size := r.ScratchSize
	if size == 0 {
		size = DefaultScratchSize
	}
	if err := r.Tools.MakeExt4(ctx, filepath.Join(c.Dir, scratchFile), size, ""); err != nil {
		return "", fmt.Errorf("scratch disk: %w", err)
	}
	if err := container.MountRootfs(c); err != nil {
		r.log().Debug("image root not visible on the host; --user takes numeric ids only", "err", err)
		container.UnmountRootfs(c.Dir, c.Rootfs())
		return "", nil
	}
	return c.Rootfs(), nil
}

// sockPath returns the path of a socket of c: in its directory when the path fits a
// Unix socket address (with room for the vsock device's "_PORT" suffixes:
// MaxSocketPath), else in the temporary folder.
func sockPath(c *container.Container, name string) string {
	p := filepath.Join(c.Dir, name)
	if len(p) <= MaxSocketPath {
		return p
	}
	return filepath.Join(os.TempDir(), "hull-"+c.ShortID()+"-"+name)
}

// fileVolume reads a bind mount of a single host file for the agent to write.
func fileVolume(m specs.Mount) (guest.File, error) {
	f, err := os.Open(m.Source)
	if err != nil {
		return guest.File{}, fmt.Errorf("volume %s: %w", m.Source, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, guest.MaxFileSize+1))
	if err != nil {
		return guest.File{}, fmt.Errorf("volume %s: %w", m.Source, err)
	}
	if len(b) > guest.MaxFileSize {
		return guest.File{}, fmt.Errorf("volume %s: VM mode carries a single file of at most %d KiB (copied in, not back); mount the folder that holds it", m.Source, guest.MaxFileSize>>10)
	}
	return guest.File{Path: path.Clean("/" + m.Destination), Data: b, ReadOnly: hasOption(m.Options, "ro")}, nil
}

// volume is a -v directory carried on a disk.
type volume struct {
	src, img string
	ro       bool
}

// disks returns the VM's disks and rewrites spec's bind mounts of host folders into
// volume disks, which it makes from the folders' current contents. Bind mounts of
// single host files (up to guest.MaxFileSize) come back as files the agent writes into
// the root: a copy in, nothing copied back.
func (r *Runtime) disks(ctx context.Context, c *container.Container, spec *specs.Spec) ([]vmm.Disk, []volume, []guest.File, error) {
	var disks []vmm.Disk
	for i, d := range c.Disks {
		disks = append(disks, vmm.Disk{Path: d, ReadOnly: true, ID: LayerSerial(i)})
	}
	disks = append(disks, vmm.Disk{Path: filepath.Join(c.Dir, scratchFile), ID: Scratch})
	var vols []volume
	var files []guest.File
	var mounts []specs.Mount
	for _, m := range spec.Mounts {
		if m.Type != "bind" && m.Type != "rbind" && !hasOption(m.Options, "bind") && !hasOption(m.Options, "rbind") {
			mounts = append(mounts, m)
			continue
		}
		fi, err := os.Stat(m.Source)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("volume %s: %w", m.Source, err)
		}
		if fi.Mode().IsRegular() {
			if len(files) == guest.MaxFiles {
				return nil, nil, nil, fmt.Errorf("volume %s: more than %d single-file volumes: mount a folder", m.Source, guest.MaxFiles)
			}
			f, err := fileVolume(m)
			if err != nil {
				return nil, nil, nil, err
			}
			files = append(files, f)
			continue
		}
		if !fi.IsDir() {
			return nil, nil, nil, fmt.Errorf("volume %s: not a folder or a regular file", m.Source)
		}
		v := volume{src: m.Source, img: filepath.Join(c.Dir, fmt.Sprintf("vol-%d.img", len(vols))), ro: hasOption(m.Options, "ro")}
		if !v.ro && r.Tools.Debugfs == "" {
			return nil, nil, nil, fmt.Errorf("volume %s: VM mode copies a writable volume back with debugfs, which is not installed: install e2fsprogs, or mount it :ro", m.Source)
		}
		n, err := dirSize(m.Source)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("volume %s: %w", m.Source, err)
		}
		if err := r.Tools.MakeExt4(ctx, v.img, volumeSize(n), m.Source); err != nil {
			return nil, nil, nil, fmt.Errorf("volume %s: %w", m.Source, err)
		}
		serial := fmt.Sprintf("%s%d", VolumePrefix, len(vols))
		disks = append(disks, vmm.Disk{Path: v.img, ReadOnly: v.ro, ID: serial})
		opts := []string{"nosuid", "nodev"}
		if v.ro {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "ext4", Source: agentSerial + serial, Options: opts})
		vols = append(vols, v)
	}
	spec.Mounts = mounts
	if len(disks) > vmm.MaxDisks {
		return nil, nil, nil, fmt.Errorf("%d disks (layers, scratch and volumes): a VM takes at most %d", len(disks), vmm.MaxDisks)
	}
	return disks, vols, files, nil
}

// agentSerial is the mount source prefix that names a disk by serial (agent.SerialSource).
const agentSerial = "serial:"

func hasOption(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

// sizing returns the VM's vCPUs and memory from the spec's resources: the CPU quota
// rounded up, and the memory limit plus HeadroomMiB.
func sizing(spec *specs.Spec) (cpus, mib int) {
	cpus, mib = 1, DefaultMemoryMiB
	if spec.Linux == nil || spec.Linux.Resources == nil {
		return cpus, mib
	}
	res := spec.Linux.Resources
	if c := res.CPU; c != nil && c.Quota != nil && c.Period != nil && *c.Period > 0 && *c.Quota > 0 {
		cpus = int((uint64(*c.Quota) + *c.Period - 1) / *c.Period)
		cpus = min(max(cpus, 1), vmm.MaxCPUs)
	}
	if m := res.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		mib = int((*m.Limit+(1<<20)-1)>>20) + HeadroomMiB
		mib = min(mib, vmm.MaxMemoryMiB)
	}
	return cpus, mib
}

// Start implements container.Runtime: it boots the VM in this process, runs the
// bundle's process through the agent and returns once the process runs (or why it
// could not). The VM lives until the process exits; Wait then returns its status.
func (r *Runtime) Start(ctx context.Context, c *container.Container, stdio container.IO) (container.Process, error) {
	bg := context.WithoutCancel(ctx)
	spec, err := bundle.Read(c.Dir)
	if err != nil {
		return nil, err
	}
	spec.Process.Terminal = stdio.TTY
	if stdio.TTY && stdio.Size.Rows > 0 {
		spec.Process.ConsoleSize = &specs.Box{Height: uint(stdio.Size.Rows), Width: uint(stdio.Size.Cols)}
	}
	// The image root is built in the guest; a host view made by Prepare is not needed.
	container.UnmountRootfs(c.Dir, c.Rootfs())
	disks, vols, files, err := r.disks(ctx, c, spec)
	if err != nil {
		return nil, err
	}
	layers := make([]string, len(c.Disks))
	for i := range layers {
		layers[i] = LayerSerial(i)
	}
	cpus, mib := sizing(spec)
	console, err := os.OpenFile(filepath.Join(c.Dir, consoleFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	p := &process{
		r: r, c: c, vols: vols, console: console,
		sig: make(chan syscall.Signal, 16), resize: make(chan guest.Winsize, 1),
		started: make(chan struct{}), exited: make(chan struct{}), release: make(chan struct{}),
	}
	p.tid, p.gone = sentinel(p.release)
	t0 := time.Now()
	vm, err := Boot(bg, Config{
		Kernel: r.Kernel, Initrd: r.Initrd, CPUs: cpus, MemoryMiB: mib, Disks: disks,
		Socket: sockPath(c, vsockFile), Console: console, Log: r.log().With("vm", c.ShortID()),
	})
	if err != nil {
		p.finish()
		return nil, err
	}
	p.vm = vm
	if p.ctl, err = listenControl(sockPath(c, ctlFile), p.Signal); err != nil {
		vm.Close()
		p.finish()
		return nil, err
	}
	out, errw := stdio.Out, stdio.Err
	if out == nil {
		out = io.Discard
	}
	if errw == nil {
		errw = io.Discard
	}
	gs := guest.Stdio{Stdin: stdio.In, Stdout: out, Stderr: errw, Signals: p.sig, Resize: p.resize,
		Started: func(int) { close(p.started) }}
	run := guest.Run{Spec: spec, Layers: layers, Scratch: Scratch, Files: files}
	go p.run(bg, run, gs)
	deadline := time.NewTimer(StartTimeout)
	defer deadline.Stop()
	select {
	case <-p.started:
		r.log().Debug("VM process started", "container", c.ShortID(), "cpus", cpus, "memory_mib", mib, "took", time.Since(t0))
		return p, nil
	case <-p.exited:
	case <-ctx.Done():
		select {
		case <-p.started: // it runs: too late to give up
			return p, nil
		default:
		}
		p.vm.Stop()
		<-p.exited
		return nil, fmt.Errorf("start in VM: %w%s", context.Cause(ctx), consoleTail(filepath.Join(c.Dir, consoleFile)))
	case <-deadline.C:
		p.vm.Stop()
		<-p.exited
		return nil, fmt.Errorf("start in VM: the guest did not start the process within %v: its kernel may not boot on this host's KVM%s",
			StartTimeout, consoleTail(filepath.Join(c.Dir, consoleFile)))
	}
	if p.err != nil {
		return nil, fmt.Errorf("%w%s", p.err, consoleTail(filepath.Join(c.Dir, consoleFile)))
	}
	switch p.ex.Reason {
	case guest.ReasonNotFound:
		return nil, fmt.Errorf("%w: %s", container.ErrCommandNotFound, p.ex.Message)
	case guest.ReasonCannotExec:
		return nil, fmt.Errorf("%w: %s", container.ErrCannotExec, p.ex.Message)
	}
	return nil, fmt.Errorf("start in VM: %s: %s%s", p.ex.Reason, p.ex.Message, consoleTail(filepath.Join(c.Dir, consoleFile)))
}

// consoleTailLines is how much of the guest's console a failed start quotes.
const consoleTailLines = 15

// consoleTail quotes the end of a VM's console log for an error: a --rm container's
// log goes with the container, so the reason a start failed must travel in the error.
// What the guest wrote is hostile: at most 4 KiB is read, control characters are
// dropped, and only the last consoleTailLines lines are kept.
func consoleTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const limit = 4 << 10
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-limit, 0)
	b := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(b, off)
	text := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= ' ' && r != 0x7f && r != utf8.RuneError) {
			return r
		}
		return -1
	}, string(b[:n]))
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first one is cut
	}
	if len(lines) > consoleTailLines {
		lines = lines[len(lines)-consoleTailLines:]
	}
	if len(lines) == 0 || (len(lines) == 1 && strings.TrimSpace(lines[0]) == "") {
		return fmt.Sprintf(" (console log %s: empty)", path)
	}
	return fmt.Sprintf(" (console log %s ends:\n  %s)", path, strings.Join(lines, "\n  "))
}

// sentinel starts an OS thread that lives until release is closed and returns its
// thread id, and a channel closed once the thread has gone. The thread stands for
// the VM in the container's state (State.Pid): it has its own /proc entry and start
// time, so another hull process sees the container alive exactly while the VM runs,
// as it sees a container-mode process, while the VM itself runs in this process.
func sentinel(release <-chan struct{}) (int, <-chan struct{}) {
	type result struct {
		tid  int
		gone <-chan struct{}
	}
	res := make(chan result)
	go func() {
		runtime.LockOSThread()
		id := unix.Gettid()
		if id == unix.Getpid() {
			// The main thread never ends (the runtime parks it instead): start the
			// sentinel on another thread, which cannot be this one while it is locked.
			tid, gone := sentinel(release)
			runtime.UnlockOSThread()
			res <- result{tid, gone}
			return
		}
		gone := make(chan struct{})
		res <- result{id, gone}
		<-release
		go func() {
			defer close(gone)
			for range 2500 {
				if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", id)); err != nil {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		// Returning while locked ends the thread (the Go runtime does not reuse it).
	}()
	r := <-res
	return r.tid, r.gone
}

// process is a container's process in a VM, supervised by this hull process.
type process struct {
	r       *Runtime
	c       *container.Container
	vm      *VM
	vols    []volume
	console *os.File
	ctl     *control
	tid     int
	gone    <-chan struct{}
	release chan struct{}

	sig     chan syscall.Signal
	resize  chan guest.Winsize
	started chan struct{} // closed when the agent said started
	exited  chan struct{} // closed when everything is over; ex and err are set
	ex      guest.Exit
	err     error
	once    sync.Once
}

// run runs the session, then waits for the VM to end, copies the volumes back and
// releases everything.
func (p *process) run(ctx context.Context, run guest.Run, s guest.Stdio) {
	ex, err := p.vm.Run(ctx, run, s)
	if err != nil {
		p.vm.Stop()
	}
	if _, verr := p.vm.WaitTimeout(30 * time.Second); verr != nil && err == nil {
		p.r.log().Warn("VM ended with an error after its process", "container", p.c.ShortID(), "err", verr)
	}
	if cerr := p.vm.Close(); cerr != nil {
		p.r.log().Warn("release VM", "container", p.c.ShortID(), "err", cerr)
	}
	select {
	case <-p.started:
		// The process ran: what it wrote to its volumes goes back to the host.
		for _, v := range p.vols {
			if v.ro {
				continue
			}
			if cerr := p.r.Tools.CopyOut(ctx, v.img, v.src); cerr != nil {
				err = errors.Join(err, fmt.Errorf("volume %s: %w", v.src, cerr))
			}
		}
	default:
	}
	p.ex, p.err = ex, err
	p.finish()
}

// finish releases the control socket, the console and the sentinel thread, and marks
// the process exited.
func (p *process) finish() {
	p.once.Do(func() {
		if p.ctl != nil {
			p.ctl.Close()
		}
		p.console.Close()
		close(p.release)
		<-p.gone
		close(p.exited)
	})
}

func (p *process) Pid() int { return p.tid }

// Wait implements container.Process: the agent's exit status.
func (p *process) Wait() (int, error) {
	<-p.exited
	if p.err != nil {
		return container.ExitUnknown, p.err
	}
	return p.ex.Status, nil
}

// Signal forwards sig to the process in the guest. A SIGKILL also stops the VM if the
// guest has not ended it within killGrace.
func (p *process) Signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if sig == unix.SIGKILL {
		go func() {
			select {
			case <-p.exited:
			case <-time.After(killGrace):
				p.vm.Stop()
			}
		}()
	}
	select {
	case p.sig <- sig:
		return nil
	default:
		return fmt.Errorf("signal %v: too many signals pending for the VM", sig)
	}
}

// killGrace is how long the guest has to act on a forwarded SIGKILL.
const killGrace = 10 * time.Second

func (p *process) Resize(w container.Winsize) error {
	select {
	case p.resize <- guest.Winsize{Rows: w.Rows, Cols: w.Cols}:
	default:
	}
	return nil
}

// Kill implements container.Runtime: the signal goes to the supervising hull process
// over its control socket, which forwards it to the guest. If that process no longer
// answers, SIGKILL kills it (and with it the VM).
func (r *Runtime) Kill(ctx context.Context, c *container.Container, sig syscall.Signal) error {
	err := sendSignal(ctx, sockPath(c, ctlFile), sig)
	if err == nil {
		return nil
	}
	if sig == unix.SIGKILL && sameThread(c.Pid, c.PidStart) {
		if tgid := threadGroup(c.Pid); tgid > 0 && tgid != os.Getpid() {
			if kerr := unix.Kill(tgid, unix.SIGKILL); kerr == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %s: its supervising hull process does not answer (%v)", container.ErrNotRunning, c.Name, err)
}

// Exec implements container.Runtime: the process runs in the container's VM, in its
// root beside the main process, as an exec session of the guest agent. This hull
// process dials the VM's vsock socket itself (the supervising hull process is not
// involved). With a terminal it puts hull's own in raw mode and follows its size, and
// it forwards the signals it gets to the process, as runc exec does.
func (r *Runtime) Exec(ctx context.Context, c *container.Container, p *specs.Process, stdio container.IO) (int, error) {
	sock := sockPath(c, vsockFile)
	if _, err := os.Stat(sock); err != nil {
		return 0, fmt.Errorf("%w: %s: its VM has no vsock socket (%v)", container.ErrNotRunning, c.Name, err)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	conn, err := guest.DialVsock(dctx, sock, guest.Port)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("exec in %s: connect to the guest agent: %w", c.Name, err)
	}
	defer conn.Close()

	proc := *p
	gs := guest.Stdio{Stdin: stdio.In, Stdout: stdio.Out, Stderr: stdio.Err}
	if proc.Terminal {
		t, err := attachTerminal(stdio)
		if err != nil {
			return 0, err
		}
		defer t.restore()
		if t.size.Rows > 0 {
			proc.ConsoleSize = &specs.Box{Height: uint(t.size.Rows), Width: uint(t.size.Cols)}
		}
		gs.Resize = t.resize
	}
	sigs, stop := forwardSignals()
	defer stop()
	gs.Signals = sigs
	ex, err := guest.ExecSession(ctx, conn, guest.Exec{Process: &proc}, gs)
	if errors.Is(err, guest.ErrNoExit) {
		return 0, fmt.Errorf("exec in %s: the VM ended before the command's exit status came (did the container's main process exit?): %w", c.Name, err)
	}
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", c.Name, err)
	}
	msg := clip(ex.Message, maxMessage)
	switch ex.Reason {
	case guest.ReasonNone:
		return ex.Status, nil
	case guest.ReasonNotFound:
		return 0, fmt.Errorf("%w: %s", container.ErrCommandNotFound, msg)
	case guest.ReasonCannotExec:
		return 0, fmt.Errorf("%w: %s", container.ErrCannotExec, msg)
	case guest.ReasonNotRunning:
		return 0, fmt.Errorf("%w: %s: %s", container.ErrNotRunning, c.Name, msg)
	}
	return 0, fmt.Errorf("exec in %s: guest: %s: %s (console log: %s)", c.Name, clip(string(ex.Reason), 64), msg, filepath.Join(c.Dir, consoleFile))
}

// dialTimeout bounds connecting to a running VM's agent.
const dialTimeout = 10 * time.Second

// maxMessage caps the guest's failure message shown to the user.
const maxMessage = 4 << 10

// clip shortens s, guest text, to at most n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Delete implements container.Runtime: disks, sockets and the host view of the root.
func (r *Runtime) Delete(ctx context.Context, c *container.Container) error {
	var errs []error
	if err := container.UnmountRootfs(c.Dir, c.Rootfs()); err != nil {
		errs = append(errs, err)
	}
	vols, _ := filepath.Glob(filepath.Join(c.Dir, "vol-*.img"))
	for _, f := range append(vols, filepath.Join(c.Dir, scratchFile), sockPath(c, vsockFile), sockPath(c, ctlFile)) {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sameThread reports whether thread tid exists with the start time start.
func sameThread(tid int, start uint64) bool {
	if tid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	return len(f) >= 20 && f[19] == fmt.Sprint(start)
}

// threadGroup returns the process id of thread tid, or 0.
func threadGroup(tid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			var n int
			fmt.Sscan(strings.TrimSpace(v), &n)
			return n
		}
	}
	return 0
}
