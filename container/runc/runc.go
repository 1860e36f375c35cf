// Package runc is the container-mode Runtime: the layer disks are mounted read-only
// (detached mounts of the disk files where the kernel can, loop devices otherwise:
// container.MountRootfs) under an overlay with a writable layer, and the bundle is run by
// an OCI runtime binary (runc, or crun) through its command line (run, kill, exec,
// delete), with the binary's state kept under hull's state directory. Without a
// terminal the binary's run stays in the foreground as the container process's parent
// (one exec per container, and it cleans up after itself); with one, run --detach hands
// the terminal over a console socket (OCI runtime spec, "console socket").
//
// It must not import the CLI, vmm or guest.
package runc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/bundle"
	"github.com/hullvm/hull/container"
)

// Runtime runs bundles with an OCI runtime binary.
type Runtime struct {
	name  string // runc or crun
	bin   string // path of the binary
	state string // the binary's --root
}

// New returns the runtime whose binary is name (runc or crun), found on PATH, with
// its state under stateDir.
func New(name, stateDir string) (*Runtime, error) {
	switch name {
	case "runc", "crun":
	default:
		return nil, fmt.Errorf("runtime %q is not supported: use runc or crun", name)
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("runtime %s: %w (install the %s package)", name, err, name)
	}
	if name == "crun" {
		if ctl := hybridV2Controllers(); ctl != "" {
			return nil, fmt.Errorf("%w: crun refuses hybrid cgroups whose v2 hierarchy has controllers (%s here); use --runtime runc, or move those controllers to v1", ErrUnsupportedHost, ctl)
		}
	}
	return &Runtime{name: name, bin: bin, state: stateDir}, nil
}

// ErrUnsupportedHost is a runtime that cannot work on this host.
var ErrUnsupportedHost = errors.New("runtime unsupported on this host")

// hybridV2Controllers returns the controllers of the cgroup v2 hierarchy of a hybrid
// host (v1 controllers at /sys/fs/cgroup, v2 at /sys/fs/cgroup/unified), or "".
func hybridV2Controllers() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) != nil || st.Type == unix.CGROUP2_SUPER_MAGIC {
		return ""
	}
	b, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return strings.TrimSpace(string(b))
}

// Name implements container.Runtime.
func (r *Runtime) Name() string { return r.name }

// Prepare mounts the overlay root filesystem in the bundle directory.
func (r *Runtime) Prepare(ctx context.Context, c *container.Container) (string, error) {
	if err := container.MountRootfs(c); err != nil {
		return "", err
	}
	return c.Rootfs(), nil
}

// args returns the binary's global flags followed by a command's.
func (r *Runtime) args(c *container.Container, cmd ...string) []string {
	return append([]string{"--root", r.state, "--log", filepath.Join(c.Dir, "runtime.log"), "--log-format", "json"}, cmd...)
}

// command runs the binary to completion and turns its failure into an error carrying
// the binary's own message.
func (r *Runtime) command(ctx context.Context, c *container.Container, cmd ...string) error {
	var out bytes.Buffer
	x := exec.CommandContext(ctx, r.bin, r.args(c, cmd...)...)
	x.Stdout, x.Stderr = &out, &out
	if err := x.Run(); err != nil {
		return r.fail(c, cmd[0], err, out.String())
	}
	return nil
}

// fail builds the error of a failed runtime command from its output and log.
func (r *Runtime) fail(c *container.Container, what string, err error, out string) error {
	msg := strings.TrimSpace(out)
	if m := lastLogError(filepath.Join(c.Dir, "runtime.log")); m != "" {
		msg = m
	}
	if strings.Contains(msg, "hybrid mode not supported") {
		return fmt.Errorf("%s %s: %s: this host has hybrid cgroups with controllers on cgroup v2, which %s does not support; use --runtime runc", r.name, what, msg, r.name)
	}
	if msg == "" {
		return fmt.Errorf("%s %s: %w", r.name, what, err)
	}
	if strings.Contains(msg, "exec") || strings.Contains(msg, "executable") {
		switch {
		case strings.Contains(msg, "no such file or directory"), strings.Contains(msg, "not found in $PATH"), strings.Contains(msg, "No such file or directory"):
			return fmt.Errorf("%w: %s", container.ErrCommandNotFound, msg)
		case strings.Contains(msg, "permission denied"), strings.Contains(msg, "Permission denied"):
			return fmt.Errorf("%w: %s", container.ErrCannotExec, msg)
		}
	}
	return fmt.Errorf("%s %s: %s", r.name, what, msg)
}

// lastLogError returns the last error message in a runtime's JSON log (at most the
// last 64 KiB are read).
func lastLogError(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 64<<10 {
		f.Seek(fi.Size()-64<<10, io.SeekStart)
	}
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		var e struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && (e.Level == "error" || e.Level == "fatal") && e.Msg != "" {
			last = e.Msg
		}
	}
	return last
}

// isTerminal reports whether f is a terminal. A container without -t never gets
// hull's terminal (as with Docker): it is copied through pipes, so the container's
// processes, in a process group of their own, are not stopped by SIGTTIN or SIGTTOU.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// streams turns IO into files for the runtime's children: a file is passed as is,
// another reader or writer through a pipe copied by a goroutine. closeChild closes
// the ends given to the child once it started; wait waits for the copies to end.
type streams struct {
	in, out, err *os.File
	child        []*os.File // our copies of the ends the child holds
	wg           sync.WaitGroup
	inCopy       *os.File // write end feeding stdin, closed when In ends
}

func newStreams(stdio container.IO) (*streams, error) {
	s := &streams{}
	var err error
	if s.in, err = s.input(stdio.In); err != nil {
		s.closeChild()
		return nil, err
	}
	if s.out, err = s.output(stdio.Out); err != nil {
		s.closeChild()
		return nil, err
	}
	if stdio.Err == stdio.Out && stdio.Out != nil {
		s.err = s.out
	} else if s.err, err = s.output(stdio.Err); err != nil {
		s.closeChild()
		return nil, err
	}
	return s, nil
}

func (s *streams) input(r io.Reader) (*os.File, error) {
	if f, ok := r.(*os.File); ok && !isTerminal(f) {
		return f, nil
	}
	if r == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		s.child = append(s.child, f)
		return f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdin pipe: %w", err)
	}
	s.child = append(s.child, pr)
	s.inCopy = pw
	go func() {
		io.Copy(pw, r)
		pw.Close()
	}()
	return pr, nil
}

func (s *streams) output(w io.Writer) (*os.File, error) {
	if f, ok := w.(*os.File); ok && !isTerminal(f) {
		return f, nil
	}
	if w == nil {
		w = io.Discard
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	s.child = append(s.child, pw)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		io.Copy(w, pr)
		pr.Close()
	}()
	return pw, nil
}

// abandon waits for the output copies of a run that ended without a process to
// supervise, and stops feeding it stdin.
func (s *streams) abandon() {
	s.wg.Wait()
	if s.inCopy != nil {
		s.inCopy.Close()
	}
}

func (s *streams) closeChild() {
	for _, f := range s.child {
		f.Close()
	}
	s.child = nil
}

// Start implements container.Runtime. Without a terminal the runtime's run stays in
// the foreground, the process's parent: it forwards signals, and on exit it removes the
// container's cgroups and state itself, so nothing is left to delete. With a terminal,
// run --detach hands the terminal's master side over the console socket and leaves the
// process to the caller, which must be a subreaper.
//
// A start is not given up on when ctx ends: it takes tens of milliseconds, and `runc
// run` starts the process before it writes the pid file, so there is no moment when
// killing it would be sure to stop a process that has not run. A signal that arrives
// meanwhile reaches the process once Start returns (Manager.supervise holds it).
func (r *Runtime) Start(ctx context.Context, c *container.Container, stdio container.IO) (container.Process, error) {
	ctx = context.WithoutCancel(ctx)
	if stdio.TTY {
		return r.startTTY(ctx, c, stdio)
	}
	st, err := newStreams(stdio)
	if err != nil {
		return nil, err
	}
	p, err := r.run(c, c.Dir, st, false)
	if err != nil {
		return nil, err
	}
	return r.created(p)
}

// run starts the foreground `run` of the bundle in dir for c with the streams st.
// early: the bundle is not written yet (Launch), and the runtime dies with hull until
// then (see Launch).
func (r *Runtime) run(c *container.Container, dir string, st *streams, early bool) (*process, error) {
	pidFile := pidPath(c)
	os.Remove(pidFile)
	x := exec.Command(r.bin, r.args(c, "run", "--bundle", dir, "--pid-file", pidFile, c.ID)...)
	x.Stdin, x.Stdout, x.Stderr = st.in, st.out, st.err
	// Its own process group: a terminal's Ctrl-C reaches hull, which forwards it once.
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if early {
		x.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	err := x.Start()
	st.closeChild()
	if err != nil {
		return nil, fmt.Errorf("%s run: %w", r.name, err)
	}
	p := &process{r: r, c: c, st: st, runtime: x, exited: make(chan struct{}), done: make(chan struct{})}
	go func() {
		p.runErr = x.Wait()
		close(p.exited)
	}()
	return p, nil
}

// created waits for the foreground run p to create the container's process (its pid
// file), or to end.
func (r *Runtime) created(p *process) (container.Process, error) {
	pidFile := pidPath(p.c)
	// The pid file appears once the process is created, before it runs the command
	// (runc takes tens of milliseconds to get there: no point in looking sooner).
	for tick := 4 * time.Millisecond; ; tick = min(2*tick, 20*time.Millisecond) {
		if pid, ok := readPid(pidFile); ok {
			p.pid = pid
			return p, nil
		}
		select {
		case <-p.exited:
			if pid, ok := readPid(pidFile); ok { // it ran, and is already done
				p.pid = pid
				return p, nil
			}
			p.st.abandon()
			return nil, r.fail(p.c, "run", p.runErr, "")
		case <-time.After(tick):
		}
	}
}

// launchDir, in a container's directory, is the bundle directory of a runtime
// launched early: its config.json is a FIFO that Feed writes.
const launchDir = "launch"

// Launch implements container.Launcher for runc: `runc run` starts at once, on a
// bundle directory whose config.json is a FIFO, and blocks reading it until Feed
// writes the configuration; the root filesystem is then named by its absolute path.
// runc reads its configuration with a JSON decoder, so it goes on once it has it.
// crun reads its to the end of the file, and is not launched early.
//
// Until Feed, runc waits on a FIFO that only hull can write: were hull killed then,
// runc would wait forever. So an early runc gets SIGKILL when hull dies (its parent
// death signal), also later: then the container's process, if it runs, is left to
// `hull rm`, which deletes it with the runtime's state, as after any hull killed.
func (r *Runtime) Launch(ctx context.Context, c *container.Container, stdio container.IO) (container.Launched, error) {
	if r.name != "runc" || stdio.TTY {
		return nil, nil
	}
	dir := filepath.Join(c.Dir, launchDir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("launch %s: %w", r.name, err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, bundle.ConfigFile), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("launch %s: %w", r.name, err)
	}
	st, err := newStreams(stdio)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p, err := r.run(c, dir, st, true)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &launched{p: p, dir: dir}, nil
}

// launched is a runc run started by Launch, whose bundle directory is dir.
type launched struct {
	p   *process
	dir string
}

// fifo is the path of the FIFO runc reads its configuration from.
func (l *launched) fifo() string { return filepath.Join(l.dir, bundle.ConfigFile) }

// Feed implements container.Launched: it writes spec, with the root filesystem's
// absolute path, into the FIFO runc reads.
func (l *launched) Feed(spec *specs.Spec) error {
	s := *spec
	if spec.Root != nil {
		root := *spec.Root
		root.Path = l.p.c.Rootfs()
		s.Root = &root
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return fmt.Errorf("encode bundle: %w", err)
	}
	// Opening a FIFO to write waits for its reader: runc, about 3 ms after it
	// started, usually long since. Should runc end first, a reader of our own lets the
	// open return; what runc said is then reported by Start.
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(l.fifo(), os.O_WRONLY, 0)
		ch <- opened{f, err}
	}()
	var o opened
	select {
	case o = <-ch:
	case <-l.p.exited:
		if rd, err := os.OpenFile(l.fifo(), os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			o = <-ch
			rd.Close()
		} else {
			select {
			case o = <-ch:
			default:
				return nil // the open stays blocked; nothing reads or writes the FIFO again
			}
		}
		if o.f != nil {
			o.f.Close()
		}
		return nil
	}
	if o.err != nil {
		return fmt.Errorf("launch %s: %w", l.p.r.name, o.err)
	}
	defer o.f.Close()
	// The pipe must hold the whole configuration, so a runc that stops reading
	// cannot block the write (64 KiB by default; bundles are 10 to 20 KiB).
	if len(b) > 64<<10 {
		if _, err := unix.FcntlInt(o.f.Fd(), unix.F_SETPIPE_SZ, len(b)); err != nil {
			return fmt.Errorf("launch %s: a %d-byte configuration: %w", l.p.r.name, len(b), err)
		}
	}
	if _, err := o.f.Write(b); err != nil && !errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("launch %s: %w", l.p.r.name, err)
	}
	return nil
}

// Start implements container.Launched.
func (l *launched) Start(ctx context.Context) (container.Process, error) {
	defer os.RemoveAll(l.dir) // runc has read the FIFO, or never will
	return l.p.r.created(l.p)
}

// Abort implements container.Launched: runc is killed and, had it already created the
// container, the container is deleted with runc's state.
func (l *launched) Abort() {
	l.p.runtime.Process.Kill()
	<-l.p.exited
	// The container's process, if runc made it, holds the output pipes: it goes
	// before their copies are waited for.
	r, c := l.p.r, l.p.c
	if _, err := os.Stat(filepath.Join(r.state, c.ID)); err == nil {
		r.command(context.Background(), c, "delete", "--force", c.ID)
	}
	l.p.st.abandon()
	os.RemoveAll(l.dir)
}

// pidPath is where the runtime writes the pid of c's first process.
func pidPath(c *container.Container) string { return filepath.Join(c.Dir, "init.pid") }

func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// startTTY runs the container detached with a terminal received on a console socket.
func (r *Runtime) startTTY(ctx context.Context, c *container.Container, stdio container.IO) (container.Process, error) {
	p := &process{r: r, c: c, done: make(chan struct{})}
	pidFile := pidPath(c)
	os.Remove(pidFile)
	sock, err := listenConsole()
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	x := exec.CommandContext(ctx, r.bin, r.args(c, "run", "--detach", "--bundle", c.Dir, "--pid-file", pidFile, "--console-socket", sock.path, c.ID)...)
	var out bytes.Buffer
	x.Stdout, x.Stderr = &out, &out // the process's stdio is the terminal
	if err := x.Start(); err != nil {
		return nil, fmt.Errorf("%s run: %w", r.name, err)
	}
	go sock.accept()
	if err := x.Wait(); err != nil {
		r.command(context.WithoutCancel(ctx), c, "delete", "--force", c.ID)
		return nil, r.fail(c, "run", err, out.String())
	}
	pid, ok := readPid(pidFile)
	if !ok {
		return nil, fmt.Errorf("%s run: no pid in %s", r.name, pidFile)
	}
	p.pid = pid
	master, err := sock.master(10 * time.Second)
	if err != nil {
		unix.Kill(p.pid, unix.SIGKILL)
		return nil, fmt.Errorf("%s run: %w", r.name, err)
	}
	p.pty = master
	if stdio.Size.Rows > 0 {
		p.Resize(stdio.Size)
	}
	p.copyTTY(stdio)
	return p, nil
}

// process is a container's first process: a child of the runtime's foreground run
// (runtime set), or of this subreaper process (a terminal).
type process struct {
	r    *Runtime
	c    *container.Container
	pid  int
	pty  *os.File
	st   *streams
	copy sync.WaitGroup // output copies of a TTY

	runtime *exec.Cmd     // the foreground run, or nil
	exited  chan struct{} // closed when runtime exited
	runErr  error

	mu     sync.Mutex // guards reaped, so no signal reaches a reused pid
	reaped bool
	code   int
	err    error
	once   sync.Once
	done   chan struct{}
}

func (p *process) Pid() int { return p.pid }

func (p *process) Wait() (int, error) {
	if p.runtime != nil {
		return p.waitRuntime()
	}
	p.once.Do(func() {
		var ws unix.WaitStatus
		var err error
		for {
			_, err = unix.Wait4(p.pid, &ws, 0, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		p.mu.Lock()
		p.reaped = true
		if err != nil {
			p.code, p.err = container.ExitUnknown, fmt.Errorf("wait for container process %d: %w", p.pid, err)
		} else {
			p.code = container.ExitStatus(ws)
		}
		p.mu.Unlock()
		if p.st != nil {
			p.st.wg.Wait()
		}
		p.copy.Wait()
		if p.pty != nil {
			p.pty.Close()
		}
		close(p.done)
	})
	<-p.done
	return p.code, p.err
}

// waitRuntime waits for the foreground run, whose status is the process's: the exit
// code, or 128+signal.
func (p *process) waitRuntime() (int, error) {
	p.once.Do(func() {
		<-p.exited
		p.st.wg.Wait()
		p.mu.Lock()
		p.reaped = true
		p.mu.Unlock()
		ps := p.runtime.ProcessState
		ws, _ := ps.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			p.code, p.err = container.ExitUnknown, fmt.Errorf("%s run was killed by %v; the container may still run (hull rm -f removes it)", p.r.name, ws.Signal())
		default:
			p.code = ps.ExitCode()
		}
		close(p.done)
	})
	<-p.done
	return p.code, p.err
}

func (p *process) Signal(sig syscall.Signal) error {
	if p.runtime != nil && sig != unix.SIGKILL && sig != unix.SIGSTOP {
		// The foreground run forwards what it catches; the pidfd behind Process
		// keeps a signal from reaching a reused pid.
		if err := p.runtime.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal container process: %w", err)
		}
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	if err := unix.Kill(p.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal container process: %w", err)
	}
	return nil
}

func (p *process) Resize(w container.Winsize) error {
	if p.pty == nil {
		return nil
	}
	return unix.IoctlSetWinsize(int(p.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: w.Rows, Col: w.Cols})
}

// copyTTY copies between the terminal's master side and stdio. Output ends when every
// process holding the terminal is gone (EIO); input ends with In.
func (p *process) copyTTY(stdio container.IO) {
	if stdio.In != nil {
		go io.Copy(p.pty, stdio.In)
	}
	out := stdio.Out
	if out == nil {
		out = io.Discard
	}
	p.copy.Add(1)
	go func() {
		defer p.copy.Done()
		io.Copy(out, p.pty)
	}()
}

// Kill implements container.Runtime.
func (r *Runtime) Kill(ctx context.Context, c *container.Container, sig syscall.Signal) error {
	return r.command(ctx, c, "kill", c.ID, strconv.Itoa(int(sig)))
}

// Exec implements container.Runtime: the runtime's exec stays in the foreground,
// handles the terminal and forwards signals, and exits with the process's status.
func (r *Runtime) Exec(ctx context.Context, c *container.Container, p *specs.Process, stdio container.IO) (int, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("encode exec process: %w", err)
	}
	f, err := os.CreateTemp(c.Dir, "exec-*.json")
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return 0, fmt.Errorf("exec: %w", err)
	}
	f.Close()
	args := []string{"exec", "--process", f.Name()}
	if p.Terminal {
		args = append(args, "--tty")
	}
	x := exec.CommandContext(ctx, r.bin, r.args(c, append(args, c.ID)...)...)
	st, err := newStreams(stdio)
	if err != nil {
		return 0, err
	}
	x.Stdin, x.Stdout, x.Stderr = st.in, st.out, st.err
	err = x.Start()
	st.closeChild()
	if err != nil {
		return 0, fmt.Errorf("%s exec: %w", r.name, err)
	}
	err = x.Wait()
	st.wg.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		if m := lastLogError(filepath.Join(c.Dir, "runtime.log")); m != "" && ee.ExitCode() == 1 && strings.Contains(m, "exec") {
			return 0, fmt.Errorf("%s exec: %s", r.name, m)
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s exec: %w", r.name, err)
	}
	return 0, nil
}

// Delete implements container.Runtime: the runtime's state and cgroups go with delete
// --force (which also kills a process left running), then the mounts.
func (r *Runtime) Delete(ctx context.Context, c *container.Container) error {
	var errs []error
	if _, err := os.Stat(filepath.Join(r.state, c.ID)); err == nil {
		if err := r.command(ctx, c, "delete", "--force", c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := container.UnmountRootfs(c.Dir, c.Rootfs()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// consoleSocket receives the terminal's master side from the runtime (the OCI
// runtime's --console-socket protocol: one SCM_RIGHTS message).
type consoleSocket struct {
	dir, path string
	l         *net.UnixListener
	got       chan *os.File
	errc      chan error
}

func listenConsole() (*consoleSocket, error) {
	dir, err := os.MkdirTemp("", "hull-console")
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	path := filepath.Join(dir, "sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleSocket{dir: dir, path: path, l: l, got: make(chan *os.File, 1), errc: make(chan error, 1)}, nil
}

func (s *consoleSocket) accept() {
	conn, err := s.l.AcceptUnix()
	if err != nil {
		s.errc <- err
		return
	}
	defer conn.Close()
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		s.errc <- err
		return
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		s.errc <- fmt.Errorf("console socket: bad control message: %v", err)
		return
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		s.errc <- fmt.Errorf("console socket: want one descriptor: %v", err)
		return
	}
	s.got <- os.NewFile(uintptr(fds[0]), "pty-master")
}

func (s *consoleSocket) master(timeout time.Duration) (*os.File, error) {
	select {
	case f := <-s.got:
		return f, nil
	case err := <-s.errc:
		return nil, fmt.Errorf("receive terminal: %w", err)
	case <-time.After(timeout):
		return nil, errors.New("receive terminal: the runtime sent none")
	}
}

func (s *consoleSocket) Close() {
	s.l.Close()
	os.RemoveAll(s.dir)
}
