package guest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func header(k Kind, n uint32) []byte {
	b := []byte{byte(k), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], n)
	return b
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	big := bytes.Repeat([]byte("x"), MaxData+10)
	steps := []func() error{
		func() error {
			return e.JSON(KindRun, Run{Version: Version, Spec: &specs.Spec{Process: &specs.Process{Args: []string{"true"}}}})
		},
		func() error { return e.Data(KindStdin, []byte("abc")) },
		func() error { return e.Data(KindStdin, nil) },
		func() error { return e.Uint32(KindSignal, 15) },
		func() error { return e.Resize(Winsize{Rows: 24, Cols: 80}) },
		func() error { return e.Data(KindStdout, big) },
		func() error { return e.Uint32(KindCredit, 7) },
		func() error { return e.JSON(KindExit, Exit{Status: 127, Reason: ReasonNotFound, Message: "x"}) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	d := NewDecoder(&buf)
	want := []struct {
		kind Kind
		n    int
	}{{KindRun, -1}, {KindStdin, 3}, {KindStdin, 0}, {KindSignal, 4}, {KindResize, 4}, {KindStdout, MaxData}, {KindStdout, 10}, {KindCredit, 4}, {KindExit, -1}}
	var frames []Frame
	for _, w := range want {
		f, err := d.Next()
		if err != nil {
			t.Fatalf("frame %v: %v", w.kind, err)
		}
		if f.Kind != w.kind || (w.n >= 0 && len(f.Payload) != w.n) {
			t.Fatalf("got %v of %d bytes, want %v of %d", f.Kind, len(f.Payload), w.kind, w.n)
		}
		frames = append(frames, Frame{f.Kind, append([]byte(nil), f.Payload...)})
	}
	if _, err := d.Next(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
	if r, err := ParseRun(frames[0].Payload); err != nil || r.Spec.Process.Args[0] != "true" {
		t.Errorf("ParseRun = %+v, %v", r, err)
	}
	if n, err := Uint32(frames[3].Payload); n != 15 || err != nil {
		t.Errorf("signal = %d, %v", n, err)
	}
	if ws, err := ParseResize(frames[4].Payload); ws != (Winsize{24, 80}) || err != nil {
		t.Errorf("resize = %+v, %v", ws, err)
	}
	if ex, err := ParseExit(frames[8].Payload); err != nil || ex.Status != 127 || ex.Err() == nil {
		t.Errorf("exit = %+v, %v", ex, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"unknown kind", header(99, 0), ErrFrame},
		{"zero kind", header(0, 0), ErrFrame},
		{"oversized data", header(KindStdout, MaxData+1), ErrFrame},
		{"oversized control", header(KindRun, MaxControl+1), ErrFrame},
		{"huge length", header(KindExit, 0xffffffff), ErrFrame},
		{"short signal", append(header(KindSignal, 3), 1, 2, 3), ErrFrame},
		{"long credit", append(header(KindCredit, 5), 1, 2, 3, 4, 5), ErrFrame},
		{"truncated header", []byte{byte(KindStdout), 0, 0}, io.ErrUnexpectedEOF},
		{"truncated payload", append(header(KindStdout, 10), "abc"...), io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDecoder(bytes.NewReader(tc.in)).Next()
			if !errors.Is(err, tc.want) {
				t.Errorf("Next() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncodeLimits(t *testing.T) {
	e := NewEncoder(io.Discard)
	tests := []struct {
		name string
		k    Kind
		p    []byte
	}{
		{"unknown kind", 42, nil},
		{"oversized frame", KindStdout, make([]byte, MaxData+1)},
		{"short signal", KindSignal, []byte{1}},
	}
	for _, tc := range tests {
		if err := e.Frame(tc.k, tc.p); err == nil {
			t.Errorf("%s: Frame accepted it", tc.name)
		}
	}
}

func TestRunValidate(t *testing.T) {
	proc := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}}
	tests := []struct {
		name string
		run  Run
		err  string
	}{
		{"ok", Run{Version: Version, Spec: proc, Layers: []string{"hull-layer-0"}, Scratch: "hull-scratch"}, ""},
		{"version", Run{Version: 0, Spec: proc}, "version"},
		{"no spec", Run{Version: Version}, "no process"},
		{"no args", Run{Version: Version, Spec: &specs.Spec{Process: &specs.Process{}}}, "no args"},
		{"empty arg0", Run{Version: Version, Spec: &specs.Spec{Process: &specs.Process{Args: []string{""}}}}, "no args"},
		{"long serial", Run{Version: Version, Spec: proc, Layers: []string{strings.Repeat("s", 21)}}, "longer than"},
		{"empty serial", Run{Version: Version, Spec: proc, Layers: []string{""}}, "empty"},
		{"too many layers", Run{Version: Version, Spec: proc, Layers: make([]string, MaxLayers+1)}, "limit"},
		{"file", Run{Version: Version, Spec: proc, Files: []File{{Path: "/etc/hosts", Data: []byte("x")}}}, ""},
		{"relative file", Run{Version: Version, Spec: proc, Files: []File{{Path: "etc/hosts"}}}, "absolute"},
		{"unclean file", Run{Version: Version, Spec: proc, Files: []File{{Path: "/etc/../../hosts"}}}, "clean"},
		{"root file", Run{Version: Version, Spec: proc, Files: []File{{Path: "/"}}}, "below /"},
		{"big file", Run{Version: Version, Spec: proc, Files: []File{{Path: "/f", Data: make([]byte, MaxFileSize+1)}}}, "limit"},
		{"too many files", Run{Version: Version, Spec: proc, Files: make([]File, MaxFiles+1)}, "limit"},
	}
	for _, tc := range tests {
		err := tc.run.Validate()
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestExecValidate(t *testing.T) {
	tests := []struct {
		name string
		e    Exec
		err  string
	}{
		{"ok", Exec{Version: Version, Process: &specs.Process{Args: []string{"sh"}, Cwd: "/tmp"}}, ""},
		{"no cwd", Exec{Version: Version, Process: &specs.Process{Args: []string{"sh"}}}, ""},
		{"version", Exec{Version: 2, Process: &specs.Process{Args: []string{"sh"}}}, "version"},
		{"no process", Exec{Version: Version}, "no process"},
		{"no args", Exec{Version: Version, Process: &specs.Process{}}, "no args"},
		{"empty arg0", Exec{Version: Version, Process: &specs.Process{Args: []string{""}}}, "no args"},
		{"relative cwd", Exec{Version: Version, Process: &specs.Process{Args: []string{"sh"}, Cwd: "tmp"}}, "not absolute"},
	}
	for _, tc := range tests {
		err := tc.e.Validate()
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.err)
		}
	}
	if _, err := ParseExec([]byte("{")); !errors.Is(err, ErrFrame) {
		t.Errorf("ParseExec of bad JSON = %v, want ErrFrame", err)
	}
}

func TestParseExit(t *testing.T) {
	tests := []struct {
		in  string
		err bool
	}{
		{`{"status":0}`, false},
		{`{"status":255,"signal":9}`, false},
		{`{"status":256}`, true},
		{`{"status":-1}`, true},
		{`{"status":1,"signal":65}`, true},
		{`[]`, true},
	}
	for _, tc := range tests {
		if _, err := ParseExit([]byte(tc.in)); (err != nil) != tc.err {
			t.Errorf("ParseExit(%s) error = %v, want error %v", tc.in, err, tc.err)
		}
	}
}

// FuzzDecode feeds arbitrary streams to the decoder and every payload parser: they may
// fail, never panic, hang or allocate beyond a frame's limit.
func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	e.JSON(KindRun, Run{Version: Version, Spec: &specs.Spec{Process: &specs.Process{Args: []string{"echo", "hi"}, Env: []string{"A=b"}}}, Layers: []string{"hull-layer-0"}})
	e.Data(KindStdin, []byte("input"))
	e.Data(KindStdin, nil)
	e.Uint32(KindSignal, 9)
	e.Resize(Winsize{Rows: 1, Cols: 2})
	e.Data(KindStdout, []byte("out"))
	e.Data(KindStderr, []byte("err"))
	e.Uint32(KindCredit, 100)
	e.JSON(KindStarted, Started{Pid: 42})
	e.JSON(KindExit, Exit{Status: 126, Reason: ReasonCannotExec, Message: "denied"})
	f.Add(buf.Bytes())
	buf.Reset()
	e.JSON(KindHello, Hello{Version: Version, Exec: true})
	e.JSON(KindExec, Exec{Version: Version, Process: &specs.Process{Args: []string{"cat"}, Cwd: "/tmp", Terminal: true}, Stdin: true})
	e.Resize(Winsize{Rows: 24, Cols: 80})
	e.JSON(KindExit, Exit{Status: 125, Reason: ReasonNotRunning, Message: "exited"})
	f.Add(buf.Bytes())
	f.Add(append(header(KindExec, 4), "null"...))
	f.Add(append(header(KindExec, 29), `{"version":1,"process":null}`...))
	f.Add(header(KindRun, 2))
	f.Add(append(header(KindRun, 4), "null"...))
	f.Add(append(header(KindRun, 2), "{}"...))
	f.Add(append(header(KindExit, 16), `{"status":1e400}`...))
	f.Add(header(KindStdout, 0xffffffff))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			fr, err := d.Next()
			if err != nil {
				return
			}
			if i > len(b) {
				t.Fatalf("decoded %d frames from %d bytes", i, len(b))
			}
			switch fr.Kind {
			case KindRun:
				ParseRun(fr.Payload)
			case KindExec:
				if e, err := ParseExec(fr.Payload); err == nil && (e.Process == nil || len(e.Process.Args) == 0) {
					t.Fatalf("ParseExec accepted an exec without a command: %+v", e)
				}
			case KindExit:
				if ex, err := ParseExit(fr.Payload); err == nil && (ex.Status < 0 || ex.Status > 255) {
					t.Fatalf("ParseExit accepted status %d", ex.Status)
				}
			case KindSignal, KindCredit:
				if _, err := Uint32(fr.Payload); err != nil {
					t.Fatalf("decoder passed a bad %s frame: %v", fr.Kind, err)
				}
			case KindResize:
				if _, err := ParseResize(fr.Payload); err != nil {
					t.Fatalf("decoder passed a bad resize frame: %v", err)
				}
			}
		}
	})
}
