package agent_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullvm/hull/guest"
)

// lineWriter collects output and closes seen once it holds want.
type lineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// execIn runs p in the test agent's container and returns what it reported.
func execIn(t *testing.T, c *testAgent, p *specs.Process, stdin io.Reader) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	ex, err := c.Exec(ctx, guest.Exec{Process: p}, guest.Stdio{Stdin: stdin, Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("exec %v: %v", p.Args, err)
	}
	return result{ex, out.String(), errb.String()}
}

func proc(args ...string) *specs.Process { return spec(args...).Process }

// TestExec runs the container's main process and then further processes in it over
// further connections, as hull exec does in a VM: one agent (PID 1 of its namespace,
// reaping), several sessions, the main process's end ending them all.
func TestExec(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir()), Reap: true, Listen: sock, After: 1})

	t.Run("before the run", func(t *testing.T) {
		r := execIn(t, c, proc("true"), nil)
		if r.exit.Reason != guest.ReasonNotRunning || r.exit.Status != guest.StatusSetup || !strings.Contains(r.exit.Message, "not started") {
			t.Errorf("exit %+v, want not-running (125) saying it has not started", r.exit)
		}
	})

	main := spec("sh", "-c", "echo hi > /tmp/mark; echo ready; exec sleep 1000")
	main.Hostname = "vmbox"
	out := &lineWriter{want: "ready\n", seen: make(chan struct{})}
	sigs := make(chan syscall.Signal, 1)
	type res struct {
		ex  guest.Exit
		err error
	}
	mainDone := make(chan res, 1)
	go func() {
		ex, err := c.Run(context.Background(), guest.Run{Spec: main}, guest.Stdio{Stdout: out, Signals: sigs})
		mainDone <- res{ex, err}
	}()
	select {
	case <-out.seen:
	case r := <-mainDone:
		t.Fatalf("main process ended early: %+v %v", r.ex, r.err)
	case <-time.After(60 * time.Second):
		t.Fatal("main process did not start")
	}

	withEnv := proc("sh", "-c", "echo $FOO")
	withEnv.Env = append(withEnv.Env, "FOO=bar")
	withUser := proc("sh", "-c", "id -u; pwd")
	withUser.User = specs.User{UID: 1000, GID: 1000}
	withUser.Cwd = "/tmp"
	tty := proc("sh", "-c", "tty; stty size")
	tty.Terminal = true
	tty.ConsoleSize = &specs.Box{Height: 30, Width: 90}
	for _, tc := range []struct {
		name   string
		p      *specs.Process
		stdin  string
		status int
		reason guest.Reason
		stdout []string
	}{
		{name: "same root", p: proc("cat", "/tmp/mark"), stdout: []string{"hi\n"}},
		{name: "status", p: proc("sh", "-c", "exit 5"), status: 5},
		{name: "stdin", p: proc("cat"), stdin: "piped\n", stdout: []string{"piped\n"}},
		{name: "not found", p: proc("nosuchcmd"), status: 127, reason: guest.ReasonNotFound},
		{name: "not executable", p: proc("/bin/notexec"), status: 126, reason: guest.ReasonCannotExec},
		{name: "env", p: withEnv, stdout: []string{"bar\n"}},
		{name: "user and cwd", p: withUser, stdout: []string{"1000\n/tmp\n"}},
		{name: "hostname", p: proc("hostname"), stdout: []string{"vmbox\n"}},
		{name: "terminal", p: tty, stdout: []string{"/dev/pts/", "30 90"}},
		{name: "killed", p: proc("sh", "-c", "kill -9 $$"), status: 137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in io.Reader
			if tc.stdin != "" {
				in = strings.NewReader(tc.stdin)
			}
			r := execIn(t, c, tc.p, in)
			if r.exit.Status != tc.status || r.exit.Reason != tc.reason {
				t.Errorf("exit %+v, want status %d reason %q", r.exit, tc.status, tc.reason)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout %q lacks %q", r.stdout, w)
				}
			}
		})
	}

	t.Run("second run refused", func(t *testing.T) {
		r := run(t, c, guest.Run{Spec: spec("true")}, nil, nil)
		if r.exit.Reason != guest.ReasonProtocol || !strings.Contains(r.exit.Message, "already") {
			t.Errorf("exit %+v, want a protocol refusal", r.exit)
		}
	})

	// Two sessions at once: the first waits for stdin while the second runs to its end.
	t.Run("concurrent", func(t *testing.T) {
		pr, pw := io.Pipe()
		first := make(chan result, 1)
		go func() {
			var o bytes.Buffer
			ex, err := c.Exec(context.Background(), guest.Exec{Process: proc("sh", "-c", "read x; echo got $x")}, guest.Stdio{Stdin: pr, Stdout: &o})
			if err != nil {
				t.Errorf("first exec: %v", err)
			}
			first <- result{exit: ex, stdout: o.String()}
		}()
		r := execIn(t, c, proc("echo", "second"), nil)
		if r.exit.Status != 0 || r.stdout != "second\n" {
			t.Errorf("second exec: %+v %q", r.exit, r.stdout)
		}
		select {
		case f := <-first:
			t.Fatalf("first exec ended before its stdin came: %+v %q", f.exit, f.stdout)
		default:
		}
		pw.Write([]byte("go\n"))
		pw.Close()
		f := <-first
		if f.exit.Status != 0 || f.stdout != "got go\n" {
			t.Errorf("first exec: %+v %q", f.exit, f.stdout)
		}
	})

	// An exec'd process that still runs when the main process exits is killed with it.
	long := make(chan res, 1)
	started := make(chan struct{})
	go func() {
		ex, err := c.Exec(context.Background(), guest.Exec{Process: proc("sleep", "1000")}, guest.Stdio{Started: func(int) { close(started) }})
		long <- res{ex, err}
	}()
	<-started
	sigs <- syscall.SIGTERM
	if r := <-mainDone; r.err != nil || r.ex.Status != 143 {
		t.Errorf("main process: %+v %v, want 143 (SIGTERM)", r.ex, r.err)
	}
	if r := <-long; r.err != nil || r.ex.Status != 137 {
		t.Errorf("exec still running at the main process's exit: %+v %v, want 137 (killed)", r.ex, r.err)
	}

	t.Run("after the main process", func(t *testing.T) {
		after := &testAgent{Client: dialer(afterSocket(sock))}
		r := execIn(t, after, proc("true"), nil)
		if r.exit.Reason != guest.ReasonNotRunning || !strings.Contains(r.exit.Message, "exited") {
			t.Errorf("exit %+v, want not-running saying the process has exited", r.exit)
		}
	})
}
