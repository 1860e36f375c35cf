package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
)

// Client runs processes through a hull-init agent. Each Run dials a fresh connection.
type Client struct {
	// Dial connects to the agent: DialVsock in production, a unix socket in tests.
	Dial func(ctx context.Context) (net.Conn, error)
}

// Stdio is what a Run connects to the process.
type Stdio struct {
	// Stdin is copied to the process; nil gives it /dev/null. A Read blocked when the
	// process exits is left behind, as with os/exec.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output; nil discards it. With a terminal
	// everything arrives on Stdout.
	Stdout, Stderr io.Writer
	// Signals are forwarded to the process until it exits.
	Signals <-chan syscall.Signal
	// Resize carries terminal size changes.
	Resize <-chan Winsize
	// Started, when set, is called with the process's guest pid once it runs (the
	// agent's started frame). It is not called when the process could not start.
	Started func(pid int)
}

// ErrNoExit means the agent's connection ended before it sent an exit status.
var ErrNoExit = errors.New("agent closed the connection without an exit status (see the VM console log)")

// Run sends r to the agent, wires s, and returns the process's exit once it ends. A
// failure inside the guest (command not found, bad spec, missing disk) is an Exit with
// a Reason and status 125/126/127 and a nil error; the error is for transport failures.
// Cancelling ctx drops the connection.
func (c *Client) Run(ctx context.Context, r Run, s Stdio) (Exit, error) {
	conn, err := c.Dial(ctx)
	if err != nil {
		return Exit{}, fmt.Errorf("dial agent: %w", err)
	}
	defer conn.Close()
	return Session(ctx, conn, r, s)
}

// Exec runs a further process in the container the agent's Run started (see Exec);
// the result is as for Run, with ReasonNotRunning when no container process runs.
func (c *Client) Exec(ctx context.Context, e Exec, s Stdio) (Exit, error) {
	conn, err := c.Dial(ctx)
	if err != nil {
		return Exit{}, fmt.Errorf("dial agent: %w", err)
	}
	defer conn.Close()
	return ExecSession(ctx, conn, e, s)
}

// ErrNoExec means the agent predates Exec sessions.
var ErrNoExec = errors.New("the guest agent cannot run a second process in its VM: it predates exec; rebuild the initramfs (scripts/initramfs) and start the container again")

// Session runs r over an established connection to the agent; see Client.Run.
func Session(ctx context.Context, conn io.ReadWriteCloser, r Run, s Stdio) (Exit, error) {
	r.Version = Version
	r.Stdin = s.Stdin != nil
	if err := r.Validate(); err != nil {
		return Exit{}, err
	}
	return session(ctx, conn, KindRun, &r, nil, s)
}

// ExecSession runs e over an established connection to the agent; see Client.Exec.
func ExecSession(ctx context.Context, conn io.ReadWriteCloser, e Exec, s Stdio) (Exit, error) {
	e.Version = Version
	e.Stdin = s.Stdin != nil
	if err := e.Validate(); err != nil {
		return Exit{}, err
	}
	return session(ctx, conn, KindExec, &e, func(h Hello) error {
		if !h.Exec {
			return ErrNoExec
		}
		return nil
	}, s)
}

// session sends the request (kind k, JSON req) once the agent's hello passed check,
// then carries the process's stdio until its exit frame.
func session(ctx context.Context, conn io.ReadWriteCloser, k Kind, req any, check func(Hello) error, s Stdio) (Exit, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	dec := NewDecoder(conn)
	h, err := readHello(dec)
	if err != nil {
		if ctx.Err() != nil {
			return Exit{}, ctx.Err()
		}
		return Exit{}, err
	}
	if check != nil {
		if err := check(h); err != nil {
			return Exit{}, err
		}
	}
	enc := NewEncoder(conn)
	if err := enc.JSON(k, req); err != nil {
		return Exit{}, err
	}

	done := make(chan struct{})
	defer close(done)

	cr := &credit{n: StdinWindow, done: done}
	if s.Stdin != nil {
		go pumpStdin(enc, s.Stdin, cr)
	}
	go forwardEvents(enc, s, done)

	for {
		f, err := dec.Next()
		if err != nil {
			if ctx.Err() != nil {
				return Exit{}, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return Exit{}, ErrNoExit
			}
			return Exit{}, fmt.Errorf("read from agent: %w", err)
		}
		switch f.Kind {
		case KindStarted:
			if s.Started != nil {
				var st Started
				if err := json.Unmarshal(f.Payload, &st); err != nil {
					return Exit{}, fmt.Errorf("%w: started: %v", ErrFrame, err)
				}
				s.Started(st.Pid)
			}
		case KindStdout, KindStderr:
			w := s.Stdout
			if f.Kind == KindStderr {
				w = s.Stderr
			}
			if w != nil {
				// A failing writer does not stop the process; its output is dropped.
				w.Write(f.Payload)
			}
		case KindCredit:
			n, err := Uint32(f.Payload)
			if err != nil {
				return Exit{}, err
			}
			cr.add(n)
		case KindExit:
			return ParseExit(f.Payload)
		default:
			return Exit{}, fmt.Errorf("%w: agent sent a %s frame", ErrFrame, f.Kind)
		}
	}
}

func readHello(dec *Decoder) (Hello, error) {
	f, err := dec.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Hello{}, ErrNoExit
		}
		return Hello{}, fmt.Errorf("read agent hello: %w", err)
	}
	if f.Kind != KindHello {
		return Hello{}, fmt.Errorf("%w: agent's first frame is %s, want hello", ErrFrame, f.Kind)
	}
	var h Hello
	if err := json.Unmarshal(f.Payload, &h); err != nil {
		return Hello{}, fmt.Errorf("%w: hello: %v", ErrFrame, err)
	}
	if h.Version != Version {
		return Hello{}, fmt.Errorf("agent speaks protocol %d, this hull %d: rebuild the initramfs (scripts/initramfs)", h.Version, Version)
	}
	return h, nil
}

// credit counts the stdin bytes the host may still send (StdinWindow flow control).
type credit struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int
	done chan struct{}
}

func (c *credit) add(n uint32) {
	c.mu.Lock()
	c.n = min(c.n+int(min(n, StdinWindow)), StdinWindow)
	c.mu.Unlock()
	c.wake()
}

func (c *credit) wake() {
	c.mu.Lock()
	if c.cond != nil {
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

// take waits for credit and returns up to max bytes of it, or 0 when the session ends.
func (c *credit) take(max int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cond == nil {
		c.cond = sync.NewCond(&c.mu)
		go func() { <-c.done; c.wake() }()
	}
	for c.n == 0 {
		select {
		case <-c.done:
			return 0
		default:
		}
		c.cond.Wait()
	}
	n := min(c.n, max)
	c.n -= n
	return n
}

func pumpStdin(enc *Encoder, in io.Reader, cr *credit) {
	buf := make([]byte, 32<<10)
	for {
		n := cr.take(len(buf))
		if n == 0 {
			return
		}
		m, err := in.Read(buf[:n])
		if m > 0 {
			if enc.Data(KindStdin, buf[:m]) != nil {
				return
			}
		}
		cr.add(uint32(n - m)) // give back what the read did not use
		if err != nil {
			enc.Frame(KindStdin, nil)
			return
		}
	}
}

func forwardEvents(enc *Encoder, s Stdio, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case sig, ok := <-s.Signals:
			if !ok {
				s.Signals = nil
				continue
			}
			enc.Uint32(KindSignal, uint32(sig))
		case ws, ok := <-s.Resize:
			if !ok {
				s.Resize = nil
				continue
			}
			enc.Resize(ws)
		}
	}
}
