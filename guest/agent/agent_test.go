package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/guest"
	"github.com/hullvm/hull/guest/agent"
	"github.com/hullvm/hull/internal/testenv"
)

// The test binary plays three parts: the tests; the agent under test (agentEnv set),
// run in a subprocess with private mount, UTS and PID namespaces so that its mounts and
// processes vanish with it; and the agent's exec stage.
const agentEnv = "HULL_TEST_AGENT"

// agentConfig is what a test passes to the agent subprocess.
type agentConfig struct {
	Sys, Work, Base, Tools string
	// Reap makes the agent reap and kill like the guest's init. The subprocess is always
	// PID 1 of a new PID namespace, so nothing it starts outlives it.
	Reap bool
	// Listen, when set, is a Unix socket path: the agent serves every connection on it
	// (ServeAll) instead of one Run on fd 3, then After more sessions with Serve.
	Listen string
	After  int
}

func TestMain(m *testing.M) {
	if agent.InExecStage() {
		agent.ExecStage()
	}
	if c := os.Getenv(agentEnv); c != "" {
		os.Exit(serveOnce(c))
	}
	os.Exit(m.Run())
}

// serveOnce is the agent subprocess: it serves one Run on fd 3.
func serveOnce(cfg string) int {
	var c agentConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a := agent.New(log)
	a.Sys, a.Work, a.Base, a.Tools = c.Sys, c.Work, c.Base, c.Tools
	a.Reap = c.Reap
	a.DiskWait = 0
	if c.Listen != "" {
		return serveAll(a, log, c)
	}
	conn := os.NewFile(3, "conn")
	if _, err := a.Serve(context.Background(), conn); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

// serveAll is the agent subprocess in listening mode.
func serveAll(a *agent.Agent, log *slog.Logger, c agentConfig) int {
	l, err := net.Listen("unix", c.Listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	accept := func() (io.ReadWriteCloser, error) { return l.Accept() }
	_, err = a.ServeAll(context.Background(), accept)
	l.Close()
	if err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	// The sessions after the Run's end, on a second socket (afterSocket).
	l, err = net.Listen("unix", afterSocket(c.Listen))
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	defer l.Close()
	for range c.After {
		conn, err := l.Accept()
		if err != nil {
			log.Error("accept", "err", err)
			return 1
		}
		a.Serve(context.Background(), conn)
		conn.Close()
	}
	return 0
}

// afterSocket is where a listening test agent serves its After sessions.
func afterSocket(listen string) string { return listen + ".after" }

// testAgent is an agent subprocess and a client connected to it.
type testAgent struct {
	guest.Client
	// Wait waits for the subprocess to exit, which unmounts everything it mounted.
	Wait func()
	// Log returns the agent's log once Wait has returned.
	Log func() string
}

// startAgent runs the agent subprocess and returns a client connected to it.
func startAgent(t *testing.T, c agentConfig) *testAgent {
	t.Helper()
	testenv.RequireRoot(t)
	if c.Work == "" {
		c.Work = filepath.Join(t.TempDir(), "work")
	}
	if c.Sys == "" {
		c.Sys = t.TempDir() // no disks
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "host"), os.NewFile(uintptr(pair[1]), "agent")
	cfg, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), agentEnv+"="+string(cfg))
	cmd.ExtraFiles = []*os.File{theirs}
	if c.Listen != "" {
		cmd.ExtraFiles = nil
	}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: unix.CLONE_NEWNS | unix.CLONE_NEWUTS,
		Cloneflags:   unix.CLONE_NEWPID,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	conn, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	wait := func() {
		once.Do(func() {
			conn.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent subprocess: %v\n%s", err, log.String())
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Errorf("agent subprocess did not exit\n%s", log.String())
			}
			if t.Failed() {
				t.Logf("agent log:\n%s", log.String())
			}
		})
	}
	t.Cleanup(wait)
	if c.Listen != "" {
		return &testAgent{Wait: wait, Log: log.String, Client: dialer(c.Listen)}
	}
	used := false
	return &testAgent{Wait: wait, Log: log.String, Client: guest.Client{Dial: func(context.Context) (net.Conn, error) {
		if used {
			return nil, fmt.Errorf("the test agent serves one run")
		}
		used = true
		return conn, nil
	}}}
}

// dialer is a client that connects to a listening test agent at path, once it listens.
func dialer(path string) guest.Client {
	return guest.Client{Dial: func(ctx context.Context) (net.Conn, error) {
		for {
			conn, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
			if err == nil || ctx.Err() != nil {
				return conn, err
			}
			time.Sleep(5 * time.Millisecond)
		}
	}}
}

// busyboxRoot makes a root folder with a static busybox and its applets.
func busyboxRoot(t *testing.T, dir string) string {
	t.Helper()
	bb := testenv.RequireBinary(t, "busybox")
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		mkdir(t, filepath.Join(dir, d))
	}
	write(t, filepath.Join(dir, "bin/busybox"), string(b), 0o755)
	for _, a := range []string{"sh", "cat", "echo", "sleep", "true", "id", "hostname", "pwd", "kill", "tty", "stty", "grep", "ls", "env", "wc", "head", "touch", "setsid"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "bin/notexec"), "#!/bin/sh\necho no\n", 0o644)
	write(t, filepath.Join(dir, "bin/badinterp"), "#!/nonexistent/interp\n", 0o755)
	return dir
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func spec(args ...string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{
		Args: args,
		Env:  []string{"PATH=/bin"},
		Cwd:  "/",
	}}
}

type result struct {
	exit           guest.Exit
	stdout, stderr string
}

func run(t *testing.T, c *testAgent, r guest.Run, stdin io.Reader, sigs <-chan syscall.Signal) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	ex, err := c.Run(ctx, r, guest.Stdio{Stdin: stdin, Stdout: &out, Stderr: &errb, Signals: sigs})
	if err != nil {
		t.Fatalf("run %v: %v", r.Spec.Process.Args, err)
	}
	return result{ex, out.String(), errb.String()}
}

func TestProcess(t *testing.T) {
	uid := func(s *specs.Spec) *specs.Spec {
		s.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{5, 6}}
		s.Process.Cwd = "/work/dir"
		s.Process.Env = append(s.Process.Env, "FOO=bar")
		return s
	}
	limits := func(s *specs.Spec) *specs.Spec {
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 123, Hard: 456}}
		return s
	}
	host := func(s *specs.Spec) *specs.Spec { s.Hostname = "hullbox"; return s }
	tests := []struct {
		name    string
		spec    *specs.Spec
		stdin   string
		status  int
		reason  guest.Reason
		signal  int
		stdout  string
		stderr  string
		message string
	}{
		{name: "echo", spec: spec("echo", "hello"), stdout: "hello\n"},
		{name: "exit 7", spec: spec("sh", "-c", "exit 7"), status: 7},
		{name: "stderr", spec: spec("sh", "-c", "echo oops >&2; exit 1"), status: 1, stderr: "oops\n"},
		{name: "stdin through cat", spec: spec("cat"), stdin: "line one\nline two\n", stdout: "line one\nline two\n"},
		{name: "no stdin reads /dev/null", spec: spec("cat")},
		{name: "not found", spec: spec("nosuchcmd"), status: 127, reason: guest.ReasonNotFound, message: "nosuchcmd"},
		{name: "absolute not found", spec: spec("/bin/nosuch"), status: 127, reason: guest.ReasonNotFound, message: "/bin/nosuch"},
		{name: "not executable", spec: spec("/bin/notexec"), status: 126, reason: guest.ReasonCannotExec, message: "permission denied"},
		{name: "directory", spec: spec("/bin"), status: 126, reason: guest.ReasonCannotExec, message: "directory"},
		{name: "missing interpreter", spec: spec("/bin/badinterp"), status: 127, reason: guest.ReasonNotFound},
		{name: "killed by SIGKILL", spec: spec("sh", "-c", "kill -9 $$"), status: 137, signal: 9},
		{name: "user cwd env", spec: uid(spec("sh", "-c", "echo $FOO; pwd; id -u; id -g; id -G")), stdout: "bar\n/work/dir\n1000\n1001\n1001 5 6\n"},
		{name: "rlimits", spec: limits(spec("sh", "-c", "ulimit -n; ulimit -Hn")), stdout: "123\n456\n"},
		{name: "bad rlimit", spec: func() *specs.Spec {
			s := spec("true")
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}}
			return s
		}(), status: 125, reason: guest.ReasonSetup, message: "RLIMIT_BOGUS"},
		{name: "hostname", spec: host(spec("hostname")), stdout: "hullbox\n"},
		{name: "background child does not hold the exit", spec: spec("sh", "-c", "sleep 1000 & echo started"), stdout: "started\n"},
		{name: "proc mounted", spec: spec("sh", "-c", "grep -c ' /proc proc ' /proc/mounts"), stdout: "1\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir())})
			var in io.Reader
			if tc.stdin != "" {
				in = strings.NewReader(tc.stdin)
			}
			r := run(t, c, guest.Run{Spec: tc.spec}, in, nil)
			want := guest.Exit{Status: tc.status, Signal: tc.signal, Reason: tc.reason}
			got := r.exit
			got.Message = ""
			if got != want {
				t.Errorf("exit = %+v (message %q), want %+v", r.exit, r.exit.Message, want)
			}
			if !strings.Contains(r.exit.Message, tc.message) {
				t.Errorf("message %q does not mention %q", r.exit.Message, tc.message)
			}
			if r.stdout != tc.stdout {
				t.Errorf("stdout = %q, want %q", r.stdout, tc.stdout)
			}
			if r.stderr != tc.stderr {
				t.Errorf("stderr = %q, want %q", r.stderr, tc.stderr)
			}
		})
	}
}

func TestSignals(t *testing.T) {
	tests := []struct {
		sig    syscall.Signal
		status int
	}{
		{syscall.SIGTERM, 143},
		{syscall.SIGKILL, 137},
		{syscall.SIGINT, 130},
	}
	for _, tc := range tests {
		t.Run(tc.sig.String(), func(t *testing.T) {
			c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir())})
			sigs := make(chan syscall.Signal, 1)
			sigs <- tc.sig
			r := run(t, c, guest.Run{Spec: spec("sleep", "1000")}, nil, sigs)
			if r.exit.Status != tc.status || r.exit.Signal != int(tc.sig) {
				t.Errorf("exit = %+v, want status %d signal %d", r.exit, tc.status, tc.sig)
			}
		})
	}
}

// TestStdinFlowControl pushes more stdin than the credit window through a process
// that reads it slowly, so the host must wait for credit.
func TestStdinFlowControl(t *testing.T) {
	c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir())})
	data := bytes.Repeat([]byte("0123456789abcdef"), (3*guest.StdinWindow)/16+7)
	r := run(t, c, guest.Run{Spec: spec("wc", "-c")}, bytes.NewReader(data), nil)
	if r.exit.Status != 0 || strings.TrimSpace(r.stdout) != fmt.Sprint(len(data)) {
		t.Errorf("exit %+v, wc -c = %q, want %d", r.exit, r.stdout, len(data))
	}
}

func TestTerminal(t *testing.T) {
	c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir())})
	s := spec("sh", "-c", "tty; stty size; echo to-stderr >&2")
	s.Process.Terminal = true
	s.Process.ConsoleSize = &specs.Box{Height: 40, Width: 100}
	r := run(t, c, guest.Run{Spec: s}, nil, nil)
	if r.exit.Status != 0 {
		t.Fatalf("exit %+v", r.exit)
	}
	for _, want := range []string{"/dev/pts/", "40 100\r\n", "to-stderr\r\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("terminal output %q lacks %q", r.stdout, want)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr %q: with a terminal everything goes to stdout", r.stderr)
	}
}

// TestTerminalOwnDevpts gives the container a /dev of its own with a new devpts
// instance, as hull's bundles do: the terminal must come from that instance, or the
// process cannot name it (tty: not a tty).
func TestTerminalOwnDevpts(t *testing.T) {
	c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir())})
	s := spec("sh", "-c", "tty; echo done")
	s.Process.Terminal = true
	s.Mounts = []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
	}
	r := run(t, c, guest.Run{Spec: s}, nil, nil)
	if r.exit.Status != 0 || !strings.Contains(r.stdout, "/dev/pts/0") || strings.Contains(r.stdout, "not a tty") {
		t.Errorf("exit %+v, output %q: want the terminal named /dev/pts/0", r.exit, r.stdout)
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name    string
		frames  func(*guest.Encoder) error
		reason  guest.Reason
		message string
	}{
		{"stdin first", func(e *guest.Encoder) error { return e.Data(guest.KindStdin, []byte("x")) }, guest.ReasonProtocol, "first frame"},
		{"wrong version", func(e *guest.Encoder) error {
			return e.JSON(guest.KindRun, guest.Run{Version: 99, Spec: spec("true")})
		}, guest.ReasonSetup, "version"},
		{"no process", func(e *guest.Encoder) error {
			return e.JSON(guest.KindRun, guest.Run{Version: guest.Version, Spec: &specs.Spec{}})
		}, guest.ReasonSetup, "no process"},
		{"no args", func(e *guest.Encoder) error {
			return e.JSON(guest.KindRun, guest.Run{Version: guest.Version, Spec: spec()})
		}, guest.ReasonSetup, "no args"},
		{"bad json", func(e *guest.Encoder) error { return e.Frame(guest.KindRun, []byte("{")) }, guest.ReasonSetup, "run request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir())})
			conn, err := c.Dial(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			dec := guest.NewDecoder(conn)
			if f, err := dec.Next(); err != nil || f.Kind != guest.KindHello {
				t.Fatalf("first frame %v %v, want hello", f.Kind, err)
			}
			if err := tc.frames(guest.NewEncoder(conn)); err != nil {
				t.Fatal(err)
			}
			f, err := dec.Next()
			if err != nil || f.Kind != guest.KindExit {
				t.Fatalf("reply %v %v, want an exit frame", f.Kind, err)
			}
			ex, err := guest.ParseExit(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Reason != tc.reason || ex.Status != guest.StatusSetup || !strings.Contains(ex.Message, tc.message) {
				t.Errorf("exit %+v, want reason %s status 125 mentioning %q", ex, tc.reason, tc.message)
			}
		})
	}
}

// TestOrphans runs a process that leaves a descendant holding stdout open in a new
// session, where killing the process group cannot reach it. As PID 1 the agent kills
// and reaps it at once; as an ordinary process it gives up on the output after a grace
// period and says so.
func TestOrphans(t *testing.T) {
	tests := []struct {
		name     string
		reap     bool
		drainLog bool
	}{
		{"as PID 1", true, false},
		{"as an ordinary process", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir()), Reap: tc.reap})
			r := run(t, c, guest.Run{Spec: spec("sh", "-c", "setsid sh -c 'touch /tmp/ready; exec sleep 1000' & until [ -e /tmp/ready ]; do sleep 0.01; done; echo hi")}, nil, nil)
			if r.exit.Status != 0 || r.stdout != "hi\n" {
				t.Errorf("exit %+v stdout %q", r.exit, r.stdout)
			}
			c.Wait()
			if got := strings.Contains(c.Log(), "output still open"); got != tc.drainLog {
				t.Errorf("agent log mentions undrained output: %v, want %v\n%s", got, tc.drainLog, c.Log())
			}
		})
	}
}

// TestResize drives the protocol by hand so that the resize is ordered before the
// stdin that makes the shell print its terminal size.
func TestResize(t *testing.T) {
	c := startAgent(t, agentConfig{Base: busyboxRoot(t, t.TempDir())})
	conn, err := c.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dec, enc := guest.NewDecoder(conn), guest.NewEncoder(conn)
	s := spec("sh", "-c", "read x; stty size")
	s.Process.Terminal = true
	s.Process.ConsoleSize = &specs.Box{Height: 10, Width: 20}
	if f, err := dec.Next(); err != nil || f.Kind != guest.KindHello {
		t.Fatalf("first frame %v %v", f.Kind, err)
	}
	if err := enc.JSON(guest.KindRun, guest.Run{Version: guest.Version, Spec: s, Stdin: true}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("read: %v (output so far %q)", err, out.String())
		}
		switch f.Kind {
		case guest.KindStarted:
			enc.Resize(guest.Winsize{Rows: 33, Cols: 77})
			enc.Data(guest.KindStdin, []byte("go\n"))
		case guest.KindStdout:
			out.Write(f.Payload)
		case guest.KindExit:
			ex, err := guest.ParseExit(f.Payload)
			if err != nil || ex.Status != 0 || !strings.Contains(out.String(), "33 77") {
				t.Errorf("exit %+v %v, output %q, want the new size 33 77", ex, err, out.String())
			}
			return
		}
	}
}
