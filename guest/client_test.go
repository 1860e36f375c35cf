package guest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeAgent plays the agent's side of one session on conn with script.
func fakeAgent(t *testing.T, script func(*Decoder, *Encoder) error) Client {
	t.Helper()
	host, guest := net.Pipe()
	go func() {
		defer guest.Close()
		d, e := NewDecoder(guest), NewEncoder(guest)
		if err := e.JSON(KindHello, Hello{Version: Version}); err != nil {
			t.Errorf("fake agent: %v", err)
			return
		}
		f, err := d.Next()
		if err != nil || f.Kind != KindRun {
			t.Errorf("fake agent: first frame %v %v", f.Kind, err)
			return
		}
		if _, err := ParseRun(f.Payload); err != nil {
			t.Errorf("fake agent: %v", err)
			return
		}
		if err := script(d, e); err != nil {
			t.Errorf("fake agent: %v", err)
		}
	}()
	return Client{Dial: func(context.Context) (net.Conn, error) { return host, nil }}
}

var testRun = Run{Spec: &specs.Spec{Process: &specs.Process{Args: []string{"x"}}}}

func TestClientSession(t *testing.T) {
	// The agent echoes stdin to stdout, granting credit as it goes, then exits 3.
	c := fakeAgent(t, func(d *Decoder, e *Encoder) error {
		e.JSON(KindStarted, Started{Pid: 7})
		for {
			f, err := d.Next()
			if err != nil {
				return err
			}
			if f.Kind != KindStdin {
				continue
			}
			if len(f.Payload) == 0 {
				e.Data(KindStderr, []byte("eof"))
				return e.JSON(KindExit, Exit{Status: 3})
			}
			e.Data(KindStdout, f.Payload)
			e.Uint32(KindCredit, uint32(len(f.Payload)))
		}
	})
	in := bytes.Repeat([]byte("abcdefgh"), StdinWindow/8*3)
	var out, errb bytes.Buffer
	ex, err := c.Run(context.Background(), testRun, Stdio{Stdin: bytes.NewReader(in), Stdout: &out, Stderr: &errb})
	if err != nil || ex.Status != 3 || ex.Err() != nil {
		t.Fatalf("Run = %+v, %v", ex, err)
	}
	if !bytes.Equal(out.Bytes(), in) || errb.String() != "eof" {
		t.Errorf("stdout %d bytes (want %d), stderr %q", out.Len(), len(in), errb.String())
	}
}

func TestClientSignals(t *testing.T) {
	c := fakeAgent(t, func(d *Decoder, e *Encoder) error {
		for {
			f, err := d.Next()
			if err != nil {
				return err
			}
			if f.Kind == KindSignal {
				n, _ := Uint32(f.Payload)
				return e.JSON(KindExit, Exit{Status: 128 + int(n), Signal: int(n)})
			}
		}
	})
	sigs := make(chan syscall.Signal, 1)
	sigs <- syscall.SIGTERM
	ex, err := c.Run(context.Background(), testRun, Stdio{Signals: sigs})
	if err != nil || ex.Status != 143 || ex.Signal != 15 {
		t.Errorf("Run = %+v, %v, want status 143", ex, err)
	}
}

func TestClientFailures(t *testing.T) {
	tests := []struct {
		name   string
		script func(*Decoder, *Encoder) error
		want   error
	}{
		{"closed without exit", func(*Decoder, *Encoder) error { return nil }, ErrNoExit},
		{"host frame from agent", func(_ *Decoder, e *Encoder) error { return e.Uint32(KindSignal, 1) }, ErrFrame},
		{"bad exit", func(_ *Decoder, e *Encoder) error { return e.Frame(KindExit, []byte(`{"status":999}`)) }, ErrFrame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeAgent(t, tc.script)
			_, err := c.Run(context.Background(), testRun, Stdio{})
			if !errors.Is(err, tc.want) {
				t.Errorf("Run error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestClientGuestError(t *testing.T) {
	c := fakeAgent(t, func(_ *Decoder, e *Encoder) error {
		return e.JSON(KindExit, Exit{Status: 127, Reason: ReasonNotFound, Message: "exec nosuch: not found"})
	})
	ex, err := c.Run(context.Background(), testRun, Stdio{})
	var ge *GuestError
	if err != nil || ex.Status != 127 || !errors.As(ex.Err(), &ge) || ge.Reason != ReasonNotFound {
		t.Errorf("Run = %+v, %v; Err() = %v", ex, err, ex.Err())
	}
}

func TestClientCancel(t *testing.T) {
	// The agent never says hello; cancelling ctx must end the wait.
	host, agent := net.Pipe()
	defer agent.Close()
	c := Client{Dial: func(context.Context) (net.Conn, error) { return host, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.Run(ctx, testRun, Stdio{Stdin: strings.NewReader("x")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run error %v, want context.Canceled", err)
	}
}

func TestDialVsock(t *testing.T) {
	sock := t.TempDir() + "/v.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A Firecracker-style VMM: the first two connections find no listener in the guest
	// and are dropped; the third is accepted and the agent speaks at once.
	go func() {
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			if string(buf[:n]) != "CONNECT 1024\n" {
				t.Errorf("VMM got %q", buf[:n])
			}
			if i < 2 {
				c.Close()
				continue
			}
			c.Write([]byte("OK 1073741824\nagent-bytes"))
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialVsock(ctx, sock, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	if string(b) != "agent-bytes" {
		t.Errorf("after the handshake read %q, want the agent's bytes", b)
	}
}

func TestDialVsockGivesUp(t *testing.T) {
	tests := []struct {
		name  string
		reply string // "" means nothing listens
	}{
		{"nothing listening", ""},
		{"refused", "FAILURE\n"},
		{"endless reply", strings.Repeat("O", 100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sock := t.TempDir() + "/v.sock"
			if tc.reply != "" {
				l, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				go func() {
					for {
						c, err := l.Accept()
						if err != nil {
							return
						}
						c.Write([]byte(tc.reply))
						c.Close()
					}
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if c, err := DialVsock(ctx, sock, 1024); err == nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("DialVsock = %v, %v; want a deadline error", c, err)
			}
		})
	}
}

// TestClientExec runs an exec session against a fake agent: the request carries the
// process and stdin, and an agent whose hello lacks exec is refused before any request.
func TestClientExec(t *testing.T) {
	tests := []struct {
		name   string
		hello  Hello
		status int
		err    error
	}{
		{"exec", Hello{Version: Version, Exec: true}, 4, nil},
		{"old agent", Hello{Version: Version}, 0, ErrNoExec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host, agent := net.Pipe()
			got := make(chan Frame, 1)
			go func() {
				defer agent.Close()
				d, e := NewDecoder(agent), NewEncoder(agent)
				e.JSON(KindHello, tc.hello)
				f, err := d.Next()
				if err != nil {
					close(got)
					return
				}
				got <- Frame{f.Kind, append([]byte(nil), f.Payload...)}
				e.JSON(KindExit, Exit{Status: 4})
			}()
			c := Client{Dial: func(context.Context) (net.Conn, error) { return host, nil }}
			ex, err := c.Exec(context.Background(), Exec{Process: &specs.Process{Args: []string{"cat"}}}, Stdio{Stdin: strings.NewReader("")})
			if !errors.Is(err, tc.err) || ex.Status != tc.status {
				t.Fatalf("Exec = %+v, %v; want status %d, error %v", ex, err, tc.status, tc.err)
			}
			f, ok := <-got
			if tc.err != nil {
				if ok {
					t.Errorf("the client sent a %s frame to an agent without exec", f.Kind)
				}
				return
			}
			e, perr := ParseExec(f.Payload)
			if f.Kind != KindExec || perr != nil || e.Process.Args[0] != "cat" || !e.Stdin {
				t.Errorf("request %s %+v %v, want an exec of cat with stdin", f.Kind, e, perr)
			}
		})
	}
}
