package guest

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Wire format (docs/guest.md): one byte stream (a vsock connection) carries frames in
// both directions. A frame is a 5-byte header, kind (1 byte) and payload length (4 bytes,
// big-endian), then the payload. Control payloads are JSON; stdio payloads are raw
// bytes; signals, resizes and credits are fixed-size binary.

// Version is the protocol version a Run request carries; the agent refuses others.
const Version = 1

// Port is the vsock port the agent listens on.
const Port = 1024

// Kind says what a frame carries.
type Kind uint8

// Frames the host sends.
const (
	KindRun    Kind = 1 // JSON Run; the host's first frame, sent after the agent's Hello
	KindStdin  Kind = 2 // stdin bytes; an empty payload is EOF
	KindSignal Kind = 3 // 4 bytes: signal number
	KindResize Kind = 4 // 4 bytes: rows, cols (uint16 each)
	// KindExec is a JSON Exec: instead of a Run, the first frame of a session that
	// runs a further process in the container a Run started (hull exec).
	KindExec Kind = 5
)

// Frames the agent sends.
const (
	KindHello   Kind = 21 // JSON Hello: the agent is ready; the first frame on a connection
	KindStarted Kind = 16 // JSON Started: the process runs
	KindStdout  Kind = 17 // stdout bytes (the terminal's output when Terminal is set)
	KindStderr  Kind = 18 // stderr bytes
	KindCredit  Kind = 19 // 4 bytes: stdin bytes the process consumed
	KindExit    Kind = 20 // JSON Exit; the last frame
)

// Size limits. A decoder rejects larger frames before reading their payload.
const (
	headerSize = 5
	// MaxData caps a stdio frame's payload.
	MaxData = 64 << 10
	// MaxControl caps a JSON frame's payload (the Run request with its OCI spec).
	MaxControl = 1 << 20
	// StdinWindow is how many stdin bytes the host may send ahead of KindCredit frames.
	StdinWindow = 256 << 10
	// MaxLayers caps the layer disks of one Run.
	MaxLayers = 128
	// MaxSerial is the longest virtio-blk serial (VIRTIO_BLK_ID_BYTES, virtio 1.2 §5.2.6).
	MaxSerial = 20
	// MaxFiles and MaxFileSize cap the files of one Run (Run.Files); all of them travel
	// in the Run frame, itself at most MaxControl bytes.
	MaxFiles    = 16
	MaxFileSize = 64 << 10
)

// ErrFrame is wrapped by every error about a malformed frame.
var ErrFrame = errors.New("malformed frame")

// Frame is one decoded frame. Payload is only valid until the next Decoder.Next call.
type Frame struct {
	Kind    Kind
	Payload []byte
}

// maxPayload returns the payload limits for a kind: the largest length and whether the
// length must be exactly that. ok is false for an unknown kind.
func maxPayload(k Kind) (max int, exact, ok bool) {
	switch k {
	case KindRun, KindExec, KindStarted, KindExit, KindHello:
		return MaxControl, false, true
	case KindStdin, KindStdout, KindStderr:
		return MaxData, false, true
	case KindSignal, KindResize, KindCredit:
		return 4, true, true
	}
	return 0, false, false
}

func (k Kind) String() string {
	switch k {
	case KindRun:
		return "run"
	case KindExec:
		return "exec"
	case KindStdin:
		return "stdin"
	case KindSignal:
		return "signal"
	case KindResize:
		return "resize"
	case KindHello:
		return "hello"
	case KindStarted:
		return "started"
	case KindStdout:
		return "stdout"
	case KindStderr:
		return "stderr"
	case KindCredit:
		return "credit"
	case KindExit:
		return "exit"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Decoder reads frames from a stream. It never allocates more than one frame's limit.
type Decoder struct {
	r   *bufio.Reader
	buf []byte
}

// NewDecoder returns a Decoder reading r.
func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: bufio.NewReaderSize(r, 64<<10)} }

// Next reads the next frame. It returns io.EOF at a clean end of stream, an error
// wrapping ErrFrame for a malformed frame and io.ErrUnexpectedEOF for a truncated one.
func (d *Decoder) Next() (Frame, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(d.r, h[:]); err != nil {
		return Frame{}, err
	}
	k := Kind(h[0])
	n := binary.BigEndian.Uint32(h[1:])
	max, exact, ok := maxPayload(k)
	switch {
	case !ok:
		return Frame{}, fmt.Errorf("%w: unknown kind %d", ErrFrame, h[0])
	case uint64(n) > uint64(max):
		return Frame{}, fmt.Errorf("%w: %s payload of %d bytes, limit %d", ErrFrame, k, n, max)
	case exact && int(n) != max:
		return Frame{}, fmt.Errorf("%w: %s payload of %d bytes, want %d", ErrFrame, k, n, max)
	}
	if cap(d.buf) < int(n) {
		d.buf = make([]byte, n)
	}
	p := d.buf[:n]
	if _, err := io.ReadFull(d.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("read %s payload: %w", k, err)
	}
	return Frame{Kind: k, Payload: p}, nil
}

// Encoder writes frames to a stream; it is safe for concurrent use, one frame at a time.
type Encoder struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEncoder returns an Encoder writing w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Frame writes one frame. It refuses payloads beyond the kind's limit.
func (e *Encoder) Frame(k Kind, p []byte) error {
	max, exact, ok := maxPayload(k)
	switch {
	case !ok:
		return fmt.Errorf("encode: unknown kind %d", uint8(k))
	case len(p) > max || (exact && len(p) != max):
		return fmt.Errorf("encode %s: payload of %d bytes, limit %d", k, len(p), max)
	}
	b := make([]byte, headerSize+len(p))
	b[0] = byte(k)
	binary.BigEndian.PutUint32(b[1:], uint32(len(p)))
	copy(b[headerSize:], p)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("send %s: %w", k, err)
	}
	return nil
}

// JSON writes v as a control frame.
func (e *Encoder) JSON(k Kind, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", k, err)
	}
	return e.Frame(k, b)
}

// Data writes p as stdio frames of kind k, split at MaxData. An empty p writes one empty
// frame (EOF for stdin).
func (e *Encoder) Data(k Kind, p []byte) error {
	for {
		n := min(len(p), MaxData)
		if err := e.Frame(k, p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
	}
}

// Uint32 writes a 4-byte frame (signal, credit).
func (e *Encoder) Uint32(k Kind, v uint32) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return e.Frame(k, b[:])
}

// Resize writes a terminal resize frame.
func (e *Encoder) Resize(s Winsize) error {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], s.Rows)
	binary.BigEndian.PutUint16(b[2:], s.Cols)
	return e.Frame(KindResize, b[:])
}

// Uint32 decodes a signal or credit payload.
func Uint32(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: %d-byte integer payload", ErrFrame, len(p))
	}
	return binary.BigEndian.Uint32(p), nil
}

// Winsize is a terminal size in characters.
type Winsize struct {
	Rows, Cols uint16
}

// ParseResize decodes a KindResize payload.
func ParseResize(p []byte) (Winsize, error) {
	if len(p) != 4 {
		return Winsize{}, fmt.Errorf("%w: %d-byte resize payload", ErrFrame, len(p))
	}
	return Winsize{Rows: binary.BigEndian.Uint16(p), Cols: binary.BigEndian.Uint16(p[2:])}, nil
}

// Run asks the agent to run one OCI process in a root built from disks.
type Run struct {
	Version int `json:"version"`
	// Spec is the OCI runtime spec: Process (args, env, cwd, user, rlimits, terminal),
	// Hostname and Mounts are applied; Root.Path is ignored (the root is the layers).
	Spec *specs.Spec `json:"spec"`
	// Layers are the serials of the read-only layer disks, base layer first (image
	// manifest order). Empty means the agent's own root (the initramfs).
	Layers []string `json:"layers,omitempty"`
	// Scratch is the serial of the writable disk for the overlay's upper layer; empty
	// means a tmpfs.
	Scratch string `json:"scratch,omitempty"`
	// Stdin says the host sends stdin; without it the process reads /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Debug makes the initramfs's debug tools (when built in) visible at /.hull/bin.
	Debug bool `json:"debug,omitempty"`
	// Files are written into the container's root after its mounts, before the process
	// starts: the bind mounts of single host files, which VM mode carries inline (a
	// copy in; nothing is copied back), such as the /etc/hosts and /etc/hostname hull
	// makes for every container.
	Files []File `json:"files,omitempty"`
}

// File is one file of Run.Files.
type File struct {
	Path     string `json:"path"` // absolute, as the container sees it
	Data     []byte `json:"data"`
	ReadOnly bool   `json:"ro,omitempty"` // mode 0444 instead of 0644
}

// Validate checks what the agent needs before it touches a disk.
func (r *Run) Validate() error {
	if r.Version != Version {
		return fmt.Errorf("protocol version %d, agent speaks %d: rebuild the initramfs (scripts/initramfs)", r.Version, Version)
	}
	if r.Spec == nil || r.Spec.Process == nil {
		return errors.New("spec has no process")
	}
	if len(r.Spec.Process.Args) == 0 || r.Spec.Process.Args[0] == "" {
		return errors.New("spec process has no args: give a command")
	}
	if len(r.Layers) > MaxLayers {
		return fmt.Errorf("%d layers, limit %d", len(r.Layers), MaxLayers)
	}
	for _, s := range append(append([]string(nil), r.Layers...), r.Scratch) {
		if len(s) > MaxSerial {
			return fmt.Errorf("disk serial %q longer than %d bytes", s, MaxSerial)
		}
	}
	for _, s := range r.Layers {
		if s == "" {
			return errors.New("empty layer disk serial")
		}
	}
	if len(r.Files) > MaxFiles {
		return fmt.Errorf("%d files, limit %d", len(r.Files), MaxFiles)
	}
	for _, f := range r.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return fmt.Errorf("file path %q: want a clean absolute path below /", f.Path)
		}
		if len(f.Data) > MaxFileSize {
			return fmt.Errorf("file %s: %d bytes, limit %d", f.Path, len(f.Data), MaxFileSize)
		}
	}
	return nil
}

// ParseRun decodes and validates a KindRun payload.
func ParseRun(p []byte) (*Run, error) {
	var r Run
	if err := json.Unmarshal(p, &r); err != nil {
		return nil, fmt.Errorf("%w: run request: %v", ErrFrame, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("run request: %w", err)
	}
	return &r, nil
}

// Hello is the agent's first frame: the host sends nothing before it, so that a
// channel that is a terminal (hull.channel=/dev/hvc0) is in raw mode before any byte
// of the protocol crosses it.
type Hello struct {
	Version int `json:"version"`
	// Exec says the agent serves Exec sessions beside its Run (older agents do not).
	Exec bool `json:"exec,omitempty"`
}

// Exec asks the agent to run a further process in the container that the VM's Run
// started, as docker exec does: in the same root (overlay and mounts), with the same
// hostname and memory cgroup. The process is the whole OCI process (args, env, cwd,
// user, rlimits, terminal, console size), as the host computed it from the bundle.
type Exec struct {
	Version int            `json:"version"`
	Process *specs.Process `json:"process"`
	// Stdin says the host sends stdin; without it the process reads /dev/null.
	Stdin bool `json:"stdin,omitempty"`
}

// Validate checks an Exec before the agent acts on it.
func (e *Exec) Validate() error {
	if e.Version != Version {
		return fmt.Errorf("protocol version %d, agent speaks %d: rebuild the initramfs (scripts/initramfs)", e.Version, Version)
	}
	if e.Process == nil {
		return errors.New("exec request has no process")
	}
	if len(e.Process.Args) == 0 || e.Process.Args[0] == "" {
		return errors.New("exec process has no args: give a command")
	}
	if c := e.Process.Cwd; c != "" && c[0] != '/' {
		return fmt.Errorf("exec cwd %q is not absolute", c)
	}
	return nil
}

// ParseExec decodes and validates a KindExec payload.
func ParseExec(p []byte) (*Exec, error) {
	var e Exec
	if err := json.Unmarshal(p, &e); err != nil {
		return nil, fmt.Errorf("%w: exec request: %v", ErrFrame, err)
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("exec request: %w", err)
	}
	return &e, nil
}

// Started tells the host the process runs.
type Started struct {
	Pid int `json:"pid"`
}

// Reason says why a process did not run to its own exit.
type Reason string

// Reasons an Exit carries.
const (
	ReasonNone       Reason = ""            // the process ran and exited or was killed
	ReasonNotFound   Reason = "not-found"   // the command does not exist (status 127)
	ReasonCannotExec Reason = "cannot-exec" // it exists but cannot be executed (126)
	ReasonSetup      Reason = "setup"       // the agent could not build the root or apply the spec (125)
	ReasonProtocol   Reason = "protocol"    // the host broke the protocol (125)
	// ReasonNotRunning refuses an Exec: no container process runs in the VM (not yet,
	// or it has exited and the VM is ending) (125).
	ReasonNotRunning Reason = "not-running"
)

// Exit statuses of failures, as Docker reports them.
const (
	StatusSetup      = 125
	StatusCannotExec = 126
	StatusNotFound   = 127
)

// Exit is the last frame: the process's status, or why it did not run.
type Exit struct {
	// Status is the exit status: the process's own, 128+signal when a signal killed
	// it, or 125/126/127 when Reason is set.
	Status int `json:"status"`
	// Signal is the signal that killed the process, 0 when it exited.
	Signal int `json:"signal,omitempty"`
	// Reason and Message explain a failure in the guest.
	Reason  Reason `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Err returns the failure as an error, or nil when the process ran.
func (e Exit) Err() error {
	if e.Reason == ReasonNone {
		return nil
	}
	return &GuestError{Reason: e.Reason, Message: e.Message, Status: e.Status}
}

// ParseExit decodes a KindExit payload.
func ParseExit(p []byte) (Exit, error) {
	var e Exit
	if err := json.Unmarshal(p, &e); err != nil {
		return Exit{}, fmt.Errorf("%w: exit: %v", ErrFrame, err)
	}
	if e.Status < 0 || e.Status > 255 || e.Signal < 0 || e.Signal > 64 {
		return Exit{}, fmt.Errorf("%w: exit status %d signal %d out of range", ErrFrame, e.Status, e.Signal)
	}
	return e, nil
}

// GuestError is a failure the agent reported instead of running the process.
type GuestError struct {
	Reason  Reason
	Message string
	Status  int
}

func (e *GuestError) Error() string { return fmt.Sprintf("guest: %s: %s", e.Reason, e.Message) }
