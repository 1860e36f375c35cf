package microvm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/guest"
)

// fakeVM listens on c's vsock socket as the VMM's vsock device does (Firecracker's
// CONNECT handshake) and plays the guest agent's side of each session with agent,
// which gets the decoded Exec request. Each test runs its exec against it.
func fakeVM(t *testing.T, c *container.Container, hello guest.Hello, agent func(*guest.Exec, *guest.Encoder) error) {
	t.Helper()
	l, err := net.Listen("unix", sockPath(c, vsockFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		if line, err := br.ReadString('\n'); err != nil || line != "CONNECT 1024\n" {
			t.Errorf("fake VMM: handshake %q %v", line, err)
			return
		}
		conn.Write([]byte("OK 1073741824\n"))
		enc, dec := guest.NewEncoder(conn), guest.NewDecoder(br)
		enc.JSON(guest.KindHello, hello)
		f, err := dec.Next()
		if err != nil {
			return // the host gave up, as it does with an old agent
		}
		if f.Kind != guest.KindExec {
			t.Errorf("fake agent: first frame %s, want exec", f.Kind)
			return
		}
		e, err := guest.ParseExec(f.Payload)
		if err != nil {
			t.Errorf("fake agent: %v", err)
			return
		}
		if err := agent(e, enc); err != nil {
			t.Errorf("fake agent: %v", err)
		}
	}()
}

// TestExec checks Runtime.Exec's side of an exec session, the request it sends and
// how it maps what the agent reports, against a fake VM socket (the lab test runs the
// real one).
func TestExec(t *testing.T) {
	ok := guest.Hello{Version: guest.Version, Exec: true}
	exit := func(ex guest.Exit) func(*guest.Exec, *guest.Encoder) error {
		return func(_ *guest.Exec, e *guest.Encoder) error { return e.JSON(guest.KindExit, ex) }
	}
	tests := []struct {
		name   string
		hello  guest.Hello
		agent  func(*guest.Exec, *guest.Encoder) error
		status int
		err    error
		out    string
	}{
		{name: "status and output", hello: ok, agent: func(e *guest.Exec, enc *guest.Encoder) error {
			enc.JSON(guest.KindStarted, guest.Started{Pid: 9})
			enc.Data(guest.KindStdout, []byte(strings.Join(e.Process.Args, " ")+" "+strings.Join(e.Process.Env, " ")+" "+e.Process.Cwd))
			return enc.JSON(guest.KindExit, guest.Exit{Status: 5})
		}, status: 5, out: "sh -c exit 5 A=b FOO=bar /w"},
		{name: "killed", hello: ok, agent: exit(guest.Exit{Status: 137, Signal: 9}), status: 137},
		{name: "not found", hello: ok, agent: exit(guest.Exit{Status: 127, Reason: guest.ReasonNotFound, Message: "nosuchcmd"}), err: container.ErrCommandNotFound},
		{name: "cannot exec", hello: ok, agent: exit(guest.Exit{Status: 126, Reason: guest.ReasonCannotExec, Message: "x"}), err: container.ErrCannotExec},
		{name: "not running", hello: ok, agent: exit(guest.Exit{Status: 125, Reason: guest.ReasonNotRunning, Message: "exited"}), err: container.ErrNotRunning},
		{name: "old agent", hello: guest.Hello{Version: guest.Version}, agent: exit(guest.Exit{}), err: guest.ErrNoExec},
		{name: "agent hangs up", hello: ok, agent: func(*guest.Exec, *guest.Encoder) error { return nil }, err: guest.ErrNoExit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testContainer(t)
			fakeVM(t, c, tc.hello, tc.agent)
			var out bytes.Buffer
			p := &specs.Process{Args: []string{"sh", "-c", "exit 5"}, Env: []string{"A=b", "FOO=bar"}, Cwd: "/w"}
			code, err := (&Runtime{}).Exec(context.Background(), c, p, container.IO{Out: &out})
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("Exec = %d, %v; want error %v", code, err, tc.err)
			}
			if code != tc.status || out.String() != tc.out {
				t.Errorf("Exec = %d with output %q, want %d and %q", code, out.String(), tc.status, tc.out)
			}
		})
	}
}

// TestExecHostileAgent sends frames beyond the protocol's limits: Exec fails with
// ErrFrame instead of allocating or hanging.
func TestExecHostileAgent(t *testing.T) {
	c := testContainer(t)
	l, err := net.Listen("unix", sockPath(c, vsockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		bufio.NewReader(conn).ReadString('\n')
		conn.Write([]byte("OK 1\n"))
		conn.Write([]byte{byte(guest.KindHello), 0xff, 0xff, 0xff, 0xff})
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	_, err = (&Runtime{}).Exec(context.Background(), c, &specs.Process{Args: []string{"true"}}, container.IO{})
	if !errors.Is(err, guest.ErrFrame) {
		t.Errorf("Exec against an oversized frame = %v, want ErrFrame", err)
	}
}

func testContainer(t *testing.T) *container.Container {
	t.Helper()
	c := &container.Container{Dir: t.TempDir(), State: container.State{ID: strings.Repeat("b", 64), Name: "x"}}
	t.Cleanup(func() { os.Remove(sockPath(c, vsockFile)) }) // in the temporary folder when the path is long
	return c
}
