package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/guest"
)

// Agent runs one OCI process per Serve call. Its paths are fields so that tests run it
// as an ordinary process in a private mount namespace: a fake /sys names loop devices
// as layer disks, and Work is a temporary folder.
type Agent struct {
	Log *slog.Logger
	// Sys is sysfs, where /sys/block/<dev>/serial names each virtio-blk disk.
	Sys string
	// Dev holds the block devices, /dev/null and /dev/ptmx.
	Dev string
	// Work is where the agent mounts layers, scratch and the root ("/run/hull").
	Work string
	// Base is the root used when a Run names no layers (the initramfs, "/").
	Base string
	// Self is the agent's own executable, re-executed as the exec stage.
	Self string
	// Tools is a folder of debug tools bound read-only at /.hull/bin when a Run asks
	// for them (Run.Debug); empty or missing means none.
	Tools string
	// Reap makes the agent act as PID 1: it reaps every orphan, and when the main
	// process exits it kills every other process before reporting (only if it really
	// is PID 1 of its PID namespace). Without it only the main process is waited for
	// and its process group killed.
	Reap bool
	// DiskWait bounds how long the agent waits for a disk to appear.
	DiskWait time.Duration
	// Mount mounts a filesystem (unix.Mount); tests may wrap it.
	Mount func(source, target, fstype string, flags uintptr, data string) error
	// Cgroup is the cgroup v2 hierarchy in which the process gets a cgroup with the
	// spec's memory limit ("/sys/fs/cgroup"); empty, or not a cgroup2 mount, leaves the
	// limit unapplied (with a warning): the VM's own RAM is then the limit.
	Cgroup string

	reapOnce sync.Once
	reap     *reaper

	mu       sync.Mutex
	phase    phase
	ctr      *ctr         // the container, while its main process runs
	execs    map[int]bool // exec'd processes that run
	sessions int          // exec sessions being served
}

// phase is where the VM's one container is.
type phase int

const (
	idle    phase = iota // no Run yet
	setup                // a Run builds the root and starts the main process
	running              // the main process runs: Exec sessions are served
	ended                // the main process has exited (or never started)
)

// ctr is what an exec'd process shares with the main process.
type ctr struct {
	root   string // the container's root folder
	debug  bool   // the Run's Debug: the tools at /.hull/bin come first on PATH
	cgroup string // the main process's memory cgroup, "" if none
}

// MaxExecs caps the exec sessions served at once.
const MaxExecs = 32

// New returns an Agent with the guest's paths.
func New(log *slog.Logger) *Agent {
	return &Agent{
		Log:      log,
		Sys:      "/sys",
		Dev:      "/dev",
		Work:     "/run/hull",
		Base:     "/",
		Self:     "/proc/self/exe",
		Tools:    "/bbin",
		Reap:     os.Getpid() == 1,
		DiskWait: 2 * time.Second,
		Mount:    unix.Mount,
		Cgroup:   "/sys/fs/cgroup",
	}
}

// ErrNoRun means the connection ended before the host sent a Run request.
var ErrNoRun = errors.New("connection closed before a run request")

// failure is a guest-side error with the reason the host sees.
type failure struct {
	reason guest.Reason
	err    error
}

func (f *failure) Error() string { return f.err.Error() }

func fail(r guest.Reason, err error) *failure { return &failure{reason: r, err: err} }

func statusOf(r guest.Reason) int {
	switch r {
	case guest.ReasonNotFound:
		return guest.StatusNotFound
	case guest.ReasonCannotExec:
		return guest.StatusCannotExec
	}
	return guest.StatusSetup
}

func (a *Agent) reaper() *reaper {
	a.reapOnce.Do(func() { a.reap = newReaper(a.Reap) })
	return a.reap
}

// Serve serves one session on conn: a Run (the container's main process) or an Exec
// (a further process in it), with its stdio over conn; it sends the Exit frame and
// returns it. It returns ErrNoRun when conn ended (or sent garbage) before a request,
// so that the caller can accept another connection.
func (a *Agent) Serve(ctx context.Context, conn io.ReadWriteCloser) (guest.Exit, error) {
	_, ex, err := a.serve(ctx, conn)
	return ex, err
}

// serve is Serve; main says the session was the container's Run, whose end ends the VM.
func (a *Agent) serve(ctx context.Context, conn io.ReadWriteCloser) (main bool, ex guest.Exit, err error) {
	enc := guest.NewEncoder(conn)
	dec := guest.NewDecoder(conn)
	if err := enc.JSON(guest.KindHello, guest.Hello{Version: guest.Version, Exec: true}); err != nil {
		return false, guest.Exit{}, fmt.Errorf("%w: %v", ErrNoRun, err)
	}
	f, err := dec.Next()
	if err != nil {
		return false, guest.Exit{}, fmt.Errorf("%w: %v", ErrNoRun, err)
	}
	switch f.Kind {
	case guest.KindRun:
		if !a.claim() {
			ex, rerr := a.report(enc, guest.Exit{}, fail(guest.ReasonProtocol, errors.New("a container already ran in this VM: one Run per VM; use an exec request for another process")))
			return false, ex, rerr
		}
		run, err := guest.ParseRun(f.Payload)
		if err != nil {
			a.end()
			ex, rerr := a.report(enc, guest.Exit{}, fail(guest.ReasonSetup, err))
			return true, ex, rerr
		}
		ex, ferr := a.run(ctx, run, enc, dec)
		ex, err = a.report(enc, ex, ferr)
		return true, ex, err
	case guest.KindExec:
		e, err := guest.ParseExec(f.Payload)
		if err != nil {
			ex, rerr := a.report(enc, guest.Exit{}, fail(guest.ReasonSetup, err))
			return false, ex, rerr
		}
		ex, ferr := a.exec(ctx, e, enc, dec)
		ex, err = a.report(enc, ex, ferr)
		return false, ex, err
	}
	ex, err = a.report(enc, guest.Exit{}, fail(guest.ReasonProtocol, fmt.Errorf("first frame is %s, want run or exec", f.Kind)))
	return false, ex, err
}

// claim makes the caller's Run the VM's one container; false if a Run came first.
func (a *Agent) claim() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.phase != idle {
		return false
	}
	a.phase = setup
	return true
}

// end marks the container's process ended: no exec is served any more.
func (a *Agent) end() {
	a.mu.Lock()
	a.phase, a.ctr = ended, nil
	a.mu.Unlock()
}

// report sends the exit frame, turning a failure into an Exit with a reason.
func (a *Agent) report(enc *guest.Encoder, ex guest.Exit, f *failure) (guest.Exit, error) {
	if f != nil {
		ex = guest.Exit{Status: statusOf(f.reason), Reason: f.reason, Message: f.err.Error()}
		a.Log.Error("run failed", "reason", f.reason, "err", f.err)
	}
	return ex, enc.JSON(guest.KindExit, ex)
}

// ServeAll serves the host's connections, each a session of its own, until the
// container's Run session has ended, and returns its exit: the VM's life is its main
// process's. Exec sessions run beside it; when the main process exits their processes
// are killed, and they get closeWait to report before ServeAll returns. accept returns
// the next connection. Connections accepted after the Run's end are still answered
// (an exec is refused: not-running) until accept fails: the caller closes the listener.
func (a *Agent) ServeAll(ctx context.Context, accept func() (io.ReadWriteCloser, error)) (guest.Exit, error) {
	type result struct {
		ex  guest.Exit
		err error
	}
	// handle serves one connection and says whether it was the container's Run.
	handle := func(c io.ReadWriteCloser) (bool, guest.Exit, error) {
		main, ex, err := a.serve(ctx, c)
		if err == nil {
			awaitClose(c, closeWait)
		}
		c.Close()
		if errors.Is(err, ErrNoRun) {
			a.Log.Warn("host connection without a request", "err", err)
		}
		return main, ex, err
	}
	mainDone := make(chan result, 1)
	stop := make(chan struct{})
	defer close(stop)
	conns := make(chan io.ReadWriteCloser)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := accept()
			if err != nil {
				acceptErr <- err
				return
			}
			select {
			case conns <- c:
			case <-stop:
				go handle(c)
			}
		}
	}()
	var others sync.WaitGroup
	for {
		select {
		case err := <-acceptErr:
			return guest.Exit{}, err
		case r := <-mainDone:
			drained := make(chan struct{})
			go func() { others.Wait(); close(drained) }()
			select {
			case <-drained:
			case <-time.After(closeWait):
				a.Log.Warn("exec sessions still open after the container's exit")
			}
			return r.ex, r.err
		case c := <-conns:
			others.Add(1)
			go func() {
				main, ex, err := handle(c)
				others.Done()
				if main {
					mainDone <- result{ex, err}
				}
			}()
		}
	}
}

func (a *Agent) run(ctx context.Context, run *guest.Run, enc *guest.Encoder, dec *guest.Decoder) (guest.Exit, *failure) {
	a.Log.Info("run", "args", run.Spec.Process.Args)
	defer a.end()
	root, err := a.prepare(run)
	if err != nil {
		return guest.Exit{}, fail(guest.ReasonSetup, err)
	}
	cgDir, cg, err := a.memoryCgroup(run.Spec)
	if err != nil {
		return guest.Exit{}, fail(guest.ReasonSetup, err)
	}
	p, ferr := a.start(proc{root: root, spec: run.Spec.Process, stdin: run.Stdin, debug: run.Debug, cgroup: cg})
	if cg != nil {
		cg.Close()
	}
	if ferr != nil {
		return guest.Exit{}, ferr
	}
	a.mu.Lock()
	a.phase, a.ctr = running, &ctr{root: root, debug: run.Debug, cgroup: cgDir}
	a.mu.Unlock()
	return a.supervise(ctx, p, enc, dec, func() {
		a.mu.Lock()
		a.phase, a.ctr = ended, nil
		execs := a.execs
		a.execs = nil
		a.mu.Unlock()
		for pid := range execs {
			unix.Kill(-pid, unix.SIGKILL)
		}
		a.killRest(p.pid)
	})
}

// exec runs e's process in the running container.
func (a *Agent) exec(ctx context.Context, e *guest.Exec, enc *guest.Encoder, dec *guest.Decoder) (guest.Exit, *failure) {
	a.mu.Lock()
	c, ph := a.ctr, a.phase
	full := a.sessions >= MaxExecs
	if ph == running && !full {
		a.sessions++
	}
	a.mu.Unlock()
	switch {
	case ph == idle || ph == setup:
		return guest.Exit{}, fail(guest.ReasonNotRunning, errors.New("the container's process has not started yet: exec once it runs"))
	case ph == ended:
		return guest.Exit{}, fail(guest.ReasonNotRunning, errors.New("the container's process has exited and its VM is ending: start the container again to exec in it"))
	case full:
		return guest.Exit{}, fail(guest.ReasonSetup, fmt.Errorf("%d exec sessions already run, the limit", MaxExecs))
	}
	defer func() {
		a.mu.Lock()
		a.sessions--
		a.mu.Unlock()
	}()
	a.Log.Info("exec", "args", e.Process.Args)
	var cg *os.File
	if c.cgroup != "" {
		f, err := os.Open(c.cgroup)
		if err != nil {
			return guest.Exit{}, fail(guest.ReasonSetup, fmt.Errorf("memory cgroup: %w", err))
		}
		defer f.Close()
		cg = f
	}
	p, ferr := a.start(proc{root: c.root, spec: e.Process, stdin: e.Stdin, debug: c.debug, cgroup: cg})
	if ferr != nil {
		return guest.Exit{}, ferr
	}
	a.mu.Lock()
	if a.phase == running {
		if a.execs == nil {
			a.execs = map[int]bool{}
		}
		a.execs[p.pid] = true
	} else {
		// The main process exited while this one started: it goes the same way.
		unix.Kill(-p.pid, unix.SIGKILL)
	}
	a.mu.Unlock()
	return a.supervise(ctx, p, enc, dec, func() {
		a.mu.Lock()
		delete(a.execs, p.pid)
		a.mu.Unlock()
	})
}

// supervise carries p's stdio, signals and resizes over the session until it exits;
// after runs once it has exited, before the rest of its output is drained.
func (a *Agent) supervise(ctx context.Context, p *process, enc *guest.Encoder, dec *guest.Decoder, after func()) (guest.Exit, *failure) {
	a.Log.Info("started", "pid", p.pid)
	if err := enc.JSON(guest.KindStarted, guest.Started{Pid: p.pid}); err != nil {
		unix.Kill(p.pid, unix.SIGKILL)
	}

	var out sync.WaitGroup
	for _, o := range p.outs {
		out.Add(1)
		go func() {
			defer out.Done()
			copyOut(enc, o.kind, o.f)
		}()
	}
	exited := make(chan struct{})
	go a.readHost(dec, enc, p, exited)

	ws := <-p.status
	close(exited)
	after()

	// Output still buffered in the pipes goes out before the exit frame; a descendant
	// that escaped the kill and holds a pipe open cannot stall the report for long.
	drained := make(chan struct{})
	go func() { out.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
		a.Log.Warn("output still open after the process exited; dropping the rest", "pid", p.pid)
	case <-ctx.Done():
	}
	p.close()
	return exitOf(ws), nil
}

// exitOf maps a wait status the way Docker does: the exit code, or 128+signal.
func exitOf(ws unix.WaitStatus) guest.Exit {
	if ws.Signaled() {
		s := int(ws.Signal())
		return guest.Exit{Status: 128 + s, Signal: s}
	}
	return guest.Exit{Status: ws.ExitStatus()}
}

// killRest kills what the main process left behind: every process as PID 1, else the
// process group it led.
func (a *Agent) killRest(pid int) {
	// kill(-1) outside PID 1 would reach every process the agent may signal.
	if !a.Reap || os.Getpid() != 1 {
		unix.Kill(-pid, unix.SIGKILL)
		return
	}
	done := a.reaper().whenEmpty()
	unix.Kill(-1, unix.SIGKILL)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		a.Log.Warn("processes still alive after SIGKILL")
	}
}

// readHost handles the host's frames while the process runs: stdin, signals, resizes.
// If the host goes away the process is killed, so the VM does not outlive its client.
func (a *Agent) readHost(dec *guest.Decoder, enc *guest.Encoder, p *process, exited <-chan struct{}) {
	in := newQueue(guest.StdinWindow)
	if p.stdin != nil {
		go feedStdin(in, p.stdin, p.terminal, enc)
	} else {
		in.close()
	}
	defer in.close()
	for {
		f, err := dec.Next()
		if err != nil {
			select {
			case <-exited:
			default:
				a.Log.Warn("host connection lost; killing the process", "err", err)
				unix.Kill(p.pid, unix.SIGKILL)
			}
			return
		}
		switch f.Kind {
		case guest.KindStdin:
			if len(f.Payload) == 0 {
				in.close()
			} else if err := in.push(f.Payload); err != nil {
				a.Log.Warn("stdin dropped", "err", err)
			}
		case guest.KindSignal:
			n, _ := guest.Uint32(f.Payload)
			if n == 0 || n > 64 {
				a.Log.Warn("bad signal from host", "signal", n)
				continue
			}
			select {
			case <-exited:
			default:
				unix.Kill(p.pid, unix.Signal(n))
			}
		case guest.KindResize:
			ws, _ := guest.ParseResize(f.Payload)
			if p.master != nil {
				setWinsize(p.master, ws)
			}
		default:
			a.Log.Warn("unexpected frame from host", "kind", f.Kind)
		}
	}
}

// feedStdin writes queued stdin to the process and returns credit to the host.
func feedStdin(in *queue, w *os.File, terminal bool, enc *guest.Encoder) {
	for {
		p, ok := in.pop()
		if !ok {
			if !terminal {
				w.Close()
			}
			return
		}
		if _, err := w.Write(p); err != nil {
			in.close()
			if !terminal {
				w.Close()
			}
			return
		}
		enc.Uint32(guest.KindCredit, uint32(len(p)))
	}
}

// copyOut sends a process output stream as frames until it ends.
func copyOut(enc *guest.Encoder, k guest.Kind, r *os.File) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if enc.Data(k, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			return // EOF, or EIO from a terminal whose last holder closed it
		}
	}
}

// queue is stdin waiting for the process, capped at the host's credit window.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	bufs   [][]byte
	n, max int
	closed bool
}

func newQueue(max int) *queue {
	q := &queue{max: max}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(p []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errors.New("stdin already closed")
	}
	if q.n+len(p) > q.max {
		return fmt.Errorf("host sent %d stdin bytes beyond its %d-byte window", q.n+len(p)-q.max, q.max)
	}
	q.bufs = append(q.bufs, append([]byte(nil), p...))
	q.n += len(p)
	q.cond.Signal()
	return nil
}

// pop waits for the next chunk; ok is false once the queue is closed and empty.
func (q *queue) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.bufs) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.bufs) == 0 {
		return nil, false
	}
	p := q.bufs[0]
	q.bufs = q.bufs[1:]
	q.n -= len(p)
	return p, true
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
