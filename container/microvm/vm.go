package microvm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hullvm/hull/guest"
	"github.com/hullvm/hull/vmm"
)

// DefaultCmdline is the guest kernel's command line before the VMM's device entries:
// the serial console, a reboot through the i8042 (which ends the VM cleanly), a panic
// that reboots at once, and no boot messages (they cost time on the emulated UART).
const DefaultCmdline = "console=ttyS0 reboot=k panic=-1 quiet"

// Disk serials the agent knows (docs/guest.md).
const (
	LayerPrefix  = "hull-layer-" // + N: layer disks, base first
	Scratch      = "hull-scratch"
	VolumePrefix = "hull-vol-" // + N: volume disks
)

// LayerSerial is the serial of layer disk i (0 is the base).
func LayerSerial(i int) string { return fmt.Sprintf("%s%d", LayerPrefix, i) }

// MaxSocketPath is the longest vsock socket path: a Unix socket address holds 107
// bytes, and the device adds "_" and a port number for guest-initiated streams.
const MaxSocketPath = 95

// guestCID is every VM's vsock context ID: each VM has its own Unix socket, so the ID
// never leaves the VM.
const guestCID = 3

// Config describes a microVM that runs processes through the agent.
type Config struct {
	Kernel, Initrd string
	// Cmdline is the kernel command line; "" is DefaultCmdline.
	Cmdline   string
	CPUs      int // 1 when zero
	MemoryMiB int // 256 when zero
	// Disks are attached in order; their IDs are the serials the agent looks for.
	Disks []vmm.Disk
	// Socket is the path of the vsock device's Unix socket (at most MaxSocketPath
	// bytes: the device listens on Socket_PORT for guest-initiated streams too).
	Socket string
	// Console receives the guest's serial console (kernel and agent log); nil discards.
	Console io.Writer
	Log     *slog.Logger
}

// Validate checks what New would refuse, without touching the host.
func (c Config) Validate() error {
	if c.Socket == "" {
		return errors.New("microvm: no vsock socket path")
	}
	if len(c.Socket) > MaxSocketPath {
		return fmt.Errorf("microvm: vsock socket path %s is longer than %d bytes", c.Socket, MaxSocketPath)
	}
	return c.vmm().Validate()
}

func (c Config) vmm() vmm.Config {
	cmd := c.Cmdline
	if cmd == "" {
		cmd = DefaultCmdline
	}
	return vmm.Config{
		Kernel: c.Kernel, Initrd: c.Initrd, Cmdline: cmd, CPUs: c.CPUs, MemoryMiB: c.MemoryMiB,
		Disks: c.Disks, RNG: true, Vsock: &vmm.Vsock{CID: guestCID, UDS: c.Socket},
		Console: c.Console, Log: c.Log,
	}
}

// VM is a booted microVM whose agent runs one process.
type VM struct {
	m      *vmm.Machine
	socket string
	cancel context.CancelFunc
	done   chan struct{} // closed when the machine stopped
	exit   vmm.Exit
	err    error
	close  sync.Once
}

// Boot creates the machine and starts its vCPUs. The VM runs until the agent ends it,
// Stop, or ctx ends; Wait returns how it ended.
func Boot(ctx context.Context, cfg Config) (*VM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	os.Remove(cfg.Socket) // a stale socket of a VM that died
	m, err := vmm.New(ctx, cfg.vmm())
	if err != nil {
		os.Remove(cfg.Socket)
		return nil, fmt.Errorf("create VM: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	v := &VM{m: m, socket: cfg.Socket, cancel: cancel, done: make(chan struct{})}
	stop := context.AfterFunc(ctx, cancel)
	go func() {
		defer stop()
		v.exit, v.err = m.Run(rctx)
		close(v.done)
	}()
	return v, nil
}

// endGrace is how long a session still reads after the VM stopped.
const endGrace = 2 * time.Second

// ErrVMEnded is a VM that stopped before its agent answered or reported an exit.
var ErrVMEnded = errors.New("the VM stopped before the guest agent reported an exit status")

// Run connects to the agent and runs r with s; see guest.Session. If the VM stops
// before the agent answers, the error wraps ErrVMEnded and says how the VM ended.
func (v *VM) Run(ctx context.Context, r guest.Run, s guest.Stdio) (guest.Exit, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-v.done:
			// The agent resets the VM right after its exit frame, which may still be
			// on its way through the vsock device: read on for a moment.
			t := time.NewTimer(endGrace)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-ctx.Done():
			}
		case <-ctx.Done():
		}
	}()
	conn, err := guest.DialVsock(ctx, v.socket, guest.Port)
	if err != nil {
		return guest.Exit{}, v.ended(fmt.Errorf("connect to the guest agent: %w", err))
	}
	defer conn.Close()
	ex, err := guest.Session(ctx, conn, r, s)
	if err != nil {
		return ex, v.ended(err)
	}
	return ex, nil
}

// ended explains err by the VM's end when the VM has stopped.
func (v *VM) ended(err error) error {
	select {
	case <-v.done:
	default:
		return err
	}
	how := "exit " + v.exit.Reason.String()
	if v.err != nil {
		how = v.err.Error()
	}
	return fmt.Errorf("%w (%s; the console log says why): %v", ErrVMEnded, how, err)
}

// Wait waits until the machine stops and returns how it ended.
func (v *VM) Wait() (vmm.Exit, error) {
	<-v.done
	return v.exit, v.err
}

// WaitTimeout waits up to d for the machine to stop by itself, then stops it.
func (v *VM) WaitTimeout(d time.Duration) (vmm.Exit, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-v.done:
	case <-t.C:
		v.Stop()
	}
	return v.Wait()
}

// Done is closed when the machine has stopped.
func (v *VM) Done() <-chan struct{} { return v.done }

// Stop stops the machine at once (the guest gets no say).
func (v *VM) Stop() { v.cancel() }

// Close stops the machine if it runs, waits for it and releases it.
func (v *VM) Close() error {
	var err error
	v.close.Do(func() {
		v.cancel()
		<-v.done
		err = v.m.Close()
		os.Remove(v.socket)
	})
	return err
}

// ExecConfig is one process to run in a fresh VM: `hull vm exec`.
type ExecConfig struct {
	VM  Config
	Run guest.Run
	// ExitWait bounds how long the VM may take to end after the exit status arrived
	// (the agent syncs the disks and resets); 0 is 30 s.
	ExitWait time.Duration
}

// Timings are the phases of an Exec, measured on the host's clock.
type Timings struct {
	Boot  time.Duration // Boot returned: machine created
	Ready time.Duration // the agent answered on vsock
	Exit  time.Duration // the exit status arrived
	Down  time.Duration // the VM stopped and was released
}

// Exec boots a VM, runs one process through its agent with s, waits for the VM to end
// and returns the process's exit. A failure inside the guest (not found, setup) is an
// Exit with a Reason and a nil error; the error is for the VM and the transport.
func Exec(ctx context.Context, cfg ExecConfig, s guest.Stdio) (guest.Exit, Timings, error) {
	var tm Timings
	t0 := time.Now()
	v, err := Boot(ctx, cfg.VM)
	if err != nil {
		return guest.Exit{}, tm, err
	}
	defer v.Close()
	tm.Boot = time.Since(t0)
	started := s.Started
	var once sync.Once
	ready := func() { once.Do(func() { tm.Ready = time.Since(t0) }) }
	s.Started = func(pid int) {
		ready()
		if started != nil {
			started(pid)
		}
	}
	ex, err := v.Run(ctx, cfg.Run, s)
	ready()
	tm.Exit = time.Since(t0)
	if err != nil {
		return ex, tm, err
	}
	wait := cfg.ExitWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	if _, err := v.WaitTimeout(wait); err != nil {
		cfg.VM.log().Warn("VM ended with an error after the process exited", "err", err)
	}
	if err := v.Close(); err != nil {
		cfg.VM.log().Warn("release VM", "err", err)
	}
	tm.Down = time.Since(t0)
	return ex, tm, nil
}

func (c Config) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// SplitDisks picks the agent's disks out of ids: the layers (hull-layer-0 … in order of
// their number, which must run from 0 without a gap) and the scratch disk.
func SplitDisks(disks []vmm.Disk) (layers []string, scratch string, err error) {
	n := 0
	seen := map[string]bool{}
	for _, d := range disks {
		switch {
		case d.ID == Scratch:
			scratch = Scratch
		case strings.HasPrefix(d.ID, LayerPrefix):
			seen[d.ID] = true
			n++
		}
	}
	for i := range n {
		s := LayerSerial(i)
		if !seen[s] {
			return nil, "", fmt.Errorf("layer disks: %d disks have ids %s*, but none is %s: number them from 0 (the base layer) up", n, LayerPrefix, s)
		}
		layers = append(layers, s)
	}
	return layers, scratch, nil
}
