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
}

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

// Serve reads one Run request from conn, runs the process with its stdio over conn,
// sends the Exit frame and returns it. It returns ErrNoRun when conn ended (or sent
// garbage) before a Run request, so that the caller can accept another connection.
func (a *Agent) Serve(ctx context.Context, conn io.ReadWriteCloser) (guest.Exit, error) {
	enc := guest.NewEncoder(conn)
	dec := guest.NewDecoder(conn)
	if err := enc.JSON(guest.KindHello, guest.Hello{Version: guest.Version}); err != nil {
		return guest.Exit{}, fmt.Errorf("%w: %v", ErrNoRun, err)
	}
	f, err := dec.Next()
	if err != nil {
		return guest.Exit{}, fmt.Errorf("%w: %v", ErrNoRun, err)
	}
	if f.Kind != guest.KindRun {
		return a.report(enc, guest.Exit{}, fail(guest.ReasonProtocol, fmt.Errorf("first frame is %s, want run", f.Kind)))
	}
	run, err := guest.ParseRun(f.Payload)
	if err != nil {
		return a.report(enc, guest.Exit{}, fail(guest.ReasonSetup, err))
	}
	ex, ferr := a.run(ctx, run, enc, dec)
	return a.report(enc, ex, ferr)
}

// report sends the exit frame, turning a failure into an Exit with a reason.
func (a *Agent) report(enc *guest.Encoder, ex guest.Exit, f *failure) (guest.Exit, error) {
	if f != nil {
		ex = guest.Exit{Status: statusOf(f.reason), Reason: f.reason, Message: f.err.Error()}
		a.Log.Error("run failed", "reason", f.reason, "err", f.err)
	}
	return ex, enc.JSON(guest.KindExit, ex)
}

func (a *Agent) run(ctx context.Context, run *guest.Run, enc *guest.Encoder, dec *guest.Decoder) (guest.Exit, *failure) {
	root, err := a.prepare(run)
	if err != nil {
		return guest.Exit{}, fail(guest.ReasonSetup, err)
	}
	p, ferr := a.start(root, run)
	if ferr != nil {
		return guest.Exit{}, ferr
	}
	a.Log.Info("started", "pid", p.pid, "args", run.Spec.Process.Args)
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

	ws, err := a.wait(p.pid)
	close(exited)
	if err != nil {
		return guest.Exit{}, fail(guest.ReasonSetup, fmt.Errorf("wait for pid %d: %w", p.pid, err))
	}
	a.killRest(p.pid)

	// Output still buffered in the pipes goes out before the exit frame; a descendant
	// that escaped the kill and holds a pipe open cannot stall the report for long.
	drained := make(chan struct{})
	go func() { out.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
		a.Log.Warn("output still open after the process exited; dropping the rest")
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

// wait waits for pid; as PID 1 it reaps every other child on the way.
func (a *Agent) wait(pid int) (unix.WaitStatus, error) {
	target := pid
	if a.Reap {
		target = -1
	}
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(target, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if got == pid {
			return ws, nil
		}
	}
}

// killRest kills what the main process left behind: every process as PID 1, else the
// process group it led.
func (a *Agent) killRest(pid int) {
	// kill(-1) outside PID 1 would reach every process the agent may signal.
	if !a.Reap || os.Getpid() != 1 {
		unix.Kill(-pid, unix.SIGKILL)
		return
	}
	unix.Kill(-1, unix.SIGKILL)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var ws unix.WaitStatus
			_, err := unix.Wait4(-1, &ws, 0, nil)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return // ECHILD: all reaped
			}
		}
	}()
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
