package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/bundle"
)

// Image is what a container needs of an image: its config and its layer disks.
type Image struct {
	ID     string
	Config ocispec.Image
	Disks  []string // layer disks, lowest first
}

// ImageSource resolves an image reference; the image store and test fixtures both
// provide one.
type ImageSource interface {
	Image(ctx context.Context, ref string) (*Image, error)
}

// Config is what the user asked for when creating a container.
type Config struct {
	Image     string // reference
	Name      string // "" picks one
	Isolation string // IsolationContainer or IsolationVM (already decided)
	Runtime   string // runc, crun
	Remove    bool   // --rm
	Detach    bool
	// CgroupParent is the cgroup under which the container's cgroup is made
	// (Docker's --cgroup-parent); "" is "hull".
	CgroupParent string
	Bundle       bundle.Options
	// Launch, for a container that Run starts right after Create in the foreground
	// without a terminal, are the streams Run will be given: a runtime that can
	// (Launcher) is started with them while the container is being created.
	Launch *IO
}

// cgroupsPath is the container's cgroup under parent: names of [a-zA-Z0-9_.-]+ other
// than . and .., joined by single slashes.
func cgroupsPath(parent, id string) (string, error) {
	if parent == "" {
		parent = "hull"
	}
	parent = strings.Trim(parent, "/")
	for _, n := range strings.Split(parent, "/") {
		ok := n != "" && n != "." && n != ".."
		for i := 0; ok && i < len(n); i++ {
			ok = nameChar(n[i], true)
		}
		if !ok {
			return "", fmt.Errorf("cgroup parent %q: use a path of names such as hull or ci/jobs", parent)
		}
	}
	return "/" + parent + "/" + id, nil
}

// Manager runs the container lifecycle under a state directory.
type Manager struct {
	Root   string      // state directory; containers in Root/containers
	Images ImageSource // used by Create only
	// Runtime returns the runtime that runs containers of that name (runc, crun, vm).
	Runtime func(name string) (Runtime, error)
	// Shim is the command line that runs Supervise for a container ID appended to it in
	// a new process, such as hull's hidden "container-shim" command.
	Shim []string
	Log  *slog.Logger
}

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

// Limits on image files read while creating a container.
const maxAccountFile = 1 << 20

// Create makes a container: its directory, state, root filesystem and bundle. The
// container is Created; Run or StartDetached starts it. On error nothing is left.
func (m *Manager) Create(ctx context.Context, cfg Config) (_ *Container, err error) {
	if cfg.Name != "" {
		if err := ValidateName(cfg.Name); err != nil {
			return nil, err
		}
	}
	if err := cfg.Bundle.Validate(); err != nil {
		return nil, err
	}
	if _, err := cgroupsPath(cfg.CgroupParent, "x"); err != nil {
		return nil, err
	}
	t0 := time.Now()
	rt, err := m.Runtime(cfg.Runtime)
	if err != nil {
		return nil, err
	}
	img, err := m.Images.Image(ctx, cfg.Image)
	if err != nil {
		return nil, err
	}
	m.log().Debug("image resolved", "image", cfg.Image, "took", time.Since(t0))
	id, err := newID()
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = randomName(id)
	}
	c := &Container{Dir: filepath.Join(containersDir(m.Root), id), State: State{
		ID: id, Name: cfg.Name, Image: cfg.Image, ImageID: img.ID, Disks: img.Disks,
		Isolation: cfg.Isolation, Runtime: rt.Name(), Created: time.Now().UTC(),
		Remove: cfg.Remove, Detach: cfg.Detach, TTY: cfg.Bundle.Terminal, Status: Created,
	}}
	if err := m.reserve(ctx, c); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if c.launched != nil {
				c.launched.Abort()
				c.launched = nil
			}
			rt.Delete(context.WithoutCancel(ctx), c)
			os.RemoveAll(c.Dir)
		}
	}()
	m.log().Debug("container reserved", "container", c.ShortID(), "took", time.Since(t0))
	if l, ok := rt.(Launcher); ok && cfg.Launch != nil && !cfg.Bundle.Terminal {
		if c.launched, err = l.Launch(ctx, c, *cfg.Launch); err != nil {
			return nil, err
		}
	}
	rootfs, err := rt.Prepare(ctx, c)
	if err != nil {
		return nil, err
	}
	m.log().Debug("rootfs prepared", "container", c.ShortID(), "took", time.Since(t0))
	opts := cfg.Bundle
	if rootfs != "" {
		if opts.Passwd, err = readRootFile(rootfs, "/etc/passwd", maxAccountFile); err != nil {
			return nil, err
		}
		if opts.Group, err = readRootFile(rootfs, "/etc/group", maxAccountFile); err != nil {
			return nil, err
		}
	}
	if opts.CgroupsPath, err = cgroupsPath(cfg.CgroupParent, id); err != nil {
		return nil, err
	}
	if opts.Hostname == "" && opts.Network != bundle.NetworkHost {
		opts.Hostname = c.ShortID() // as Docker names a container's host by default
	}
	opts.CgroupNS = cgroup2()
	opts.NoSwapLimit = noSwapAccounting()
	spec, err := bundle.Build(img.Config, opts)
	if err != nil {
		return nil, err
	}
	if err := bundle.AddFiles(c.Dir, spec, bundle.EtcFiles(opts.Network, opts.Hostname, os.ReadFile)); err != nil {
		return nil, err
	}
	if err := bundle.Write(c.Dir, spec); err != nil {
		return nil, err
	}
	if c.launched != nil {
		if err := c.launched.Feed(spec); err != nil {
			return nil, err
		}
	}
	c.Command = spec.Process.Args
	if err := c.save(); err != nil {
		return nil, err
	}
	m.log().Debug("container created", "container", c.ShortID(), "took", time.Since(t0))
	return c, nil
}

// reserve makes c's directory and first state under the state directory's lock, so no
// two containers take the same name.
func (m *Manager) reserve(ctx context.Context, c *Container) error {
	dir := containersDir(m.Root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	unlock, err := flock(ctx, filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE)
	if err != nil {
		return err
	}
	defer unlock()
	// Under the lock, leftovers of hull processes killed while creating (.new-) or
	// removing (.rm-, already unmounted) a container, or making the init layer
	// (.init-new-), go.
	for _, pat := range []string{".new-*", ".rm-*", ".init-new-*"} {
		old, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	all, err := list(m.Root)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Name == c.Name {
			return fmt.Errorf("%w: %q is container %s: remove it (hull rm) or pick another --name", ErrNameInUse, c.Name, o.ShortID())
		}
	}
	// The directory appears whole, state and all, or not at all.
	tmp := filepath.Join(dir, ".new-"+c.ID)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	final := c.Dir
	c.Dir = tmp
	err = c.saveNew()
	c.Dir = final
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create container: %w", err)
	}
	return nil
}

// cgroup2 reports whether the host's cgroups are v2 only (unified).
func cgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// noSwapAccounting reports a cgroup v1 memory controller without memory+swap limits
// (swapaccount=0).
func noSwapAccounting() bool {
	if cgroup2() {
		return false
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return errors.Is(err, os.ErrNotExist)
}

// Get returns the container named by ref (name, ID or unique ID prefix), its status
// brought up to date.
func (m *Manager) Get(ctx context.Context, ref string) (*Container, error) {
	c, err := find(m.Root, ref)
	if err != nil {
		return nil, err
	}
	refresh(c)
	return c, nil
}

// List returns every container, oldest first, statuses brought up to date.
func (m *Manager) List(ctx context.Context) ([]*Container, error) {
	all, err := list(m.Root)
	for _, c := range all {
		refresh(c)
	}
	return all, err
}

// refresh marks a container whose process died without its supervisor recording it
// (hull was killed) as exited with an unknown status.
func refresh(c *Container) {
	if c.Status == Running && !c.alive() {
		c.Status, c.ExitCode = Exited, ExitUnknown
	}
}

// Signals carries what a supervisor forwards to the container: signals, and terminal
// resizes.
type Signals struct {
	Signal <-chan os.Signal
	Resize <-chan Winsize
}

// Run starts c in this process, forwards signals and resizes, waits for it and
// returns its exit status; with Remove the container is removed afterwards. The
// caller must have called Subreaper.
func (m *Manager) Run(ctx context.Context, c *Container, stdio IO, sig Signals) (int, error) {
	return m.supervise(ctx, c, stdio, sig, nil)
}

// ready is told once the container runs, or why it could not start.
type ready func(error)

func (m *Manager) supervise(ctx context.Context, c *Container, stdio IO, sig Signals, ready ready) (code int, err error) {
	launched := c.launched // started by Create, with the streams Run is given now
	c.launched = nil
	defer func() {
		if launched != nil { // not started after all
			launched.Abort()
		}
	}()
	rt, err := m.Runtime(c.Runtime)
	if err != nil {
		return 0, err
	}
	if c.Status != Created {
		return 0, fmt.Errorf("container %s is %s: only a created container can start", c.Name, c.Status)
	}
	stdio.TTY = c.TTY
	t0 := time.Now()
	// Signals are forwarded from the start on: until the process runs, a terminating
	// one (Ctrl-C, stop) cancels the start, so a VM whose guest never answers can be
	// given up on.
	startCtx, cancelStart := context.WithCancelCause(ctx)
	defer cancelStart(nil)
	var (
		pmu     sync.Mutex
		proc    Process
		pending []syscall.Signal // arrived before the process ran: delivered once it does
	)
	exited := make(chan struct{})
	stopSignals := sync.OnceFunc(func() { close(exited) })
	defer stopSignals()
	go func() {
		for {
			select {
			case s := <-sig.Signal:
				pmu.Lock()
				pp := proc
				pmu.Unlock()
				n, ok := s.(syscall.Signal)
				switch {
				case !ok:
				case pp != nil:
					pp.Signal(n)
				default:
					pmu.Lock()
					pending = append(pending, n)
					pmu.Unlock()
					if n == unix.SIGINT || n == unix.SIGTERM || n == unix.SIGHUP || n == unix.SIGQUIT {
						// The runtime gives up unless the process already runs.
						cancelStart(fmt.Errorf("start of %s given up on %v", c.Name, n))
					}
				}
			case w := <-sig.Resize:
				pmu.Lock()
				if proc != nil {
					proc.Resize(w)
				}
				pmu.Unlock()
			case <-exited:
				return
			}
		}
	}()
	var p Process
	if launched != nil {
		p, err = launched.Start(startCtx)
		launched = nil
	} else {
		p, err = rt.Start(startCtx, c, stdio)
	}
	if err != nil {
		if c.Remove {
			m.remove(context.WithoutCancel(ctx), c, rt)
		}
		if cause := context.Cause(startCtx); cause != nil && !errors.Is(cause, context.Canceled) {
			return 0, cause
		}
		return 0, err
	}
	pmu.Lock()
	proc = p
	early := pending
	pmu.Unlock()
	for _, n := range early {
		p.Signal(n)
	}
	c.Pid = p.Pid()
	c.PidStart, _ = procStart(c.Pid)
	c.Status, c.Started = Running, time.Now().UTC()
	if err := m.update(ctx, c, func(s *State) {
		s.Pid, s.PidStart, s.Status, s.Started = c.Pid, c.PidStart, c.Status, c.Started
	}); err != nil {
		p.Signal(unix.SIGKILL)
		p.Wait()
		return 0, err
	}
	m.log().Debug("container started", "container", c.ShortID(), "pid", c.Pid, "took", time.Since(t0))
	if ready != nil {
		ready(nil)
	}
	code, err = p.Wait()
	stopSignals()
	m.log().Debug("container exited", "container", c.ShortID(), "status", code, "took", time.Since(t0))
	bg := context.WithoutCancel(ctx)
	c.Status, c.ExitCode = Exited, code
	var rerr error
	if c.Remove {
		// A container removed whole needs no exit record: it is written only when
		// the removal fails and the container stays.
		if rerr = m.remove(bg, c, rt); rerr == nil {
			m.log().Debug("container removed", "container", c.ShortID(), "took", time.Since(t0))
			return code, err
		}
	}
	if uerr := m.update(bg, c, func(s *State) {
		s.Status, s.ExitCode, s.Finished = Exited, code, time.Now().UTC()
	}); uerr != nil && !errors.Is(uerr, os.ErrNotExist) {
		m.log().Warn("record exit", "container", c.ShortID(), "err", uerr)
	}
	if rerr != nil {
		return code, errors.Join(err, rerr)
	}
	return code, err
}

// update changes c's stored state under its lock. A removed container gives an error
// wrapping os.ErrNotExist.
func (m *Manager) update(ctx context.Context, c *Container, fn func(*State)) error {
	if _, err := os.Stat(c.Dir); err != nil {
		return fmt.Errorf("update container %s: %w", c.ShortID(), err)
	}
	unlock, err := c.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := load(c.Dir)
	if err != nil {
		return fmt.Errorf("update container %s: %w", c.ShortID(), err)
	}
	fn(&cur.State)
	return cur.save()
}

// StartDetached starts c under a new supervisor process (Shim) that keeps its output
// in its log and records its exit, and returns once the container runs.
func (m *Manager) StartDetached(ctx context.Context, c *Container) error {
	if len(m.Shim) == 0 {
		return errors.New("start detached: no shim command configured")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start detached: %w", err)
	}
	defer r.Close()
	x := exec.Command(m.Shim[0], append(append([]string{}, m.Shim[1:]...), c.ID)...)
	x.ExtraFiles = []*os.File{w} // fd 3: the ready pipe
	x.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	x.Dir = "/"
	if logf, err := os.OpenFile(filepath.Join(c.Dir, "shim.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		x.Stdout, x.Stderr = logf, logf
		defer logf.Close()
	}
	err = x.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start shim: %w", err)
	}
	go x.Wait() // reap it if it ends while we are still here
	// One line: "ok", or why the container could not start.
	msg, err := bufio.NewReader(io.LimitReader(r, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("start detached: %w", err)
	}
	switch s := strings.TrimSpace(string(msg)); {
	case s == "ok":
		return nil
	case s == "":
		return fmt.Errorf("start detached: the shim exited before the container started (see %s)", filepath.Join(c.Dir, "shim.log"))
	default:
		return errors.New(s)
	}
}

// Supervise is the shim's body: it starts the created container id with its output
// appended to its log, tells readyw when it runs (or why not), and waits for it.
func (m *Manager) Supervise(ctx context.Context, id string, readyw io.WriteCloser) error {
	if f, ok := readyw.(*os.File); ok {
		syscall.CloseOnExec(int(f.Fd())) // the runtime and container must not hold it
	}
	c, err := find(m.Root, id)
	if err != nil {
		fmt.Fprintln(readyw, err)
		readyw.Close()
		return err
	}
	log, err := os.OpenFile(c.Log(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(readyw, err)
		readyw.Close()
		return err
	}
	defer log.Close()
	done := false
	tell := func(err error) {
		if done {
			return
		}
		done = true
		if err != nil {
			fmt.Fprintln(readyw, strings.ReplaceAll(err.Error(), "\n", "; "))
		} else {
			fmt.Fprintln(readyw, "ok")
		}
		readyw.Close()
	}
	_, err = m.supervise(ctx, c, IO{Out: log, Err: log}, Signals{}, tell)
	tell(err)
	return err
}

// Kill sends sig to a running container's process.
func (m *Manager) Kill(ctx context.Context, ref string, sig syscall.Signal) error {
	c, err := m.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.Status != Running {
		return fmt.Errorf("%w: %s is %s", ErrNotRunning, c.Name, c.Status)
	}
	rt, err := m.Runtime(c.Runtime)
	if err != nil {
		return err
	}
	return rt.Kill(ctx, c, sig)
}

// Stop sends SIGTERM, then SIGKILL after timeout, and waits until the container has
// exited and its exit is recorded. Stopping a container that is not running is fine.
func (m *Manager) Stop(ctx context.Context, ref string, timeout time.Duration) (*Container, error) {
	c, err := m.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if c.Status != Running {
		return c, nil
	}
	rt, err := m.Runtime(c.Runtime)
	if err != nil {
		return nil, err
	}
	if err := rt.Kill(ctx, c, unix.SIGTERM); err != nil && c.alive() {
		return nil, err
	}
	if !waitDead(ctx, c, timeout) {
		if err := rt.Kill(ctx, c, unix.SIGKILL); err != nil && c.alive() {
			return nil, err
		}
		if !waitDead(ctx, c, 30*time.Second) {
			return nil, fmt.Errorf("container %s did not die after SIGKILL", c.Name)
		}
	}
	return m.waitRecorded(ctx, c), nil
}

// waitDead polls until c's process is gone or timeout passes.
func waitDead(ctx context.Context, c *Container, timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for c.alive() {
		if time.Now().After(end) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitRecorded waits a little for the supervisor to record c's exit, and returns the
// latest state.
func (m *Manager) waitRecorded(ctx context.Context, c *Container) *Container {
	for range 200 {
		cur, err := load(c.Dir)
		if err != nil {
			return c
		}
		if cur.Status != Running {
			return cur
		}
		time.Sleep(10 * time.Millisecond)
	}
	cur, err := load(c.Dir)
	if err != nil {
		return c
	}
	refresh(cur)
	return cur
}

// Remove removes a container and everything it holds. A running container needs
// force, which kills it first.
func (m *Manager) Remove(ctx context.Context, ref string, force bool) error {
	c, err := m.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.Status == Running {
		if !force {
			return fmt.Errorf("%w: %s: stop it first (hull stop) or use hull rm -f", ErrRunning, c.Name)
		}
	}
	rt, err := m.Runtime(c.Runtime)
	if err != nil {
		return err
	}
	return m.remove(ctx, c, rt)
}

func (m *Manager) remove(ctx context.Context, c *Container, rt Runtime) error {
	unlock, err := c.lock(ctx)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // removed meanwhile
		}
		return err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(c.Dir, stateFile)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if c.alive() {
		rt.Kill(ctx, c, unix.SIGKILL)
		if !waitDead(ctx, c, 30*time.Second) {
			return fmt.Errorf("remove %s: its process did not die after SIGKILL", c.Name)
		}
	}
	if err := rt.Delete(ctx, c); err != nil {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	// Renamed first, so a hull killed while removing leaves no half container.
	tomb := filepath.Join(filepath.Dir(c.Dir), ".rm-"+c.ID)
	if err := os.Rename(c.Dir, tomb); err != nil {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	if err := os.RemoveAll(tomb); err != nil {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	return nil
}

// ExecConfig is what exec runs in a running container.
type ExecConfig struct {
	Args    []string
	Env     []string
	Workdir string
	User    string
	TTY     bool
}

// Exec runs a process in a running container and returns its exit status.
func (m *Manager) Exec(ctx context.Context, ref string, e ExecConfig, stdio IO) (int, error) {
	c, err := m.Get(ctx, ref)
	if err != nil {
		return 0, err
	}
	if c.Status != Running {
		return 0, fmt.Errorf("%w: %s is %s: start a container before exec", ErrNotRunning, c.Name, c.Status)
	}
	if len(e.Args) == 0 {
		return 0, errors.New("exec: no command given")
	}
	spec, err := bundle.Read(c.Dir)
	if err != nil {
		return 0, err
	}
	p := *spec.Process
	p.Args, p.Terminal, p.ConsoleSize = e.Args, e.TTY, nil
	p.Env = append(append([]string{}, p.Env...), e.Env...)
	if e.TTY && !hasEnv(p.Env, "TERM") {
		p.Env = append(p.Env, "TERM=xterm")
	}
	if e.Workdir != "" {
		if !filepath.IsAbs(e.Workdir) {
			return 0, fmt.Errorf("working directory %q is not absolute", e.Workdir)
		}
		p.Cwd = e.Workdir
	}
	if e.User != "" {
		pw, _ := readRootFile(c.Rootfs(), "/etc/passwd", maxAccountFile)
		gr, _ := readRootFile(c.Rootfs(), "/etc/group", maxAccountFile)
		if p.User, err = bundle.LookupUser(e.User, pw, gr); err != nil {
			return 0, err
		}
	}
	rt, err := m.Runtime(c.Runtime)
	if err != nil {
		return 0, err
	}
	stdio.TTY = e.TTY
	return rt.Exec(ctx, c, &p, stdio)
}

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return true
		}
	}
	return false
}

// Logs copies the container's log to w; with follow it keeps copying until the
// container stops or ctx ends.
func (m *Manager) Logs(ctx context.Context, ref string, follow bool, w io.Writer) error {
	c, err := m.Get(ctx, ref)
	if err != nil {
		return err
	}
	f, err := os.Open(c.Log())
	if errors.Is(err, os.ErrNotExist) {
		if !c.Detach {
			return fmt.Errorf("container %s ran in the foreground: its output went to the terminal, not to a log", c.Name)
		}
		if !follow {
			return nil
		}
	} else if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	if f != nil {
		defer f.Close()
	}
	for {
		if f != nil {
			if _, err := io.Copy(w, f); err != nil {
				return fmt.Errorf("logs: %w", err)
			}
		}
		if !follow {
			return nil
		}
		cur, err := load(c.Dir)
		if err != nil {
			return nil // removed
		}
		refresh(cur)
		if cur.Status == Exited {
			if f != nil {
				io.Copy(w, f) // what was written before it exited
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if f == nil {
			if f, err = os.Open(c.Log()); err == nil {
				defer f.Close()
			} else {
				f = nil
			}
		}
	}
}

// Spec returns the container's bundle configuration.
func (m *Manager) Spec(c *Container) (*specs.Spec, error) { return bundle.Read(c.Dir) }
