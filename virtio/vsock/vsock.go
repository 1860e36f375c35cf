package vsock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hullvm/hull/virtio"
)

const (
	// QueueSize is the size of the rx and tx queues; the event queue is smaller.
	QueueSize      = 256
	eventQueueSize = 16

	// bufAlloc is the receive buffer each connection advertises (buf_alloc, §5.10.6.3):
	// what the guest may send before the host program reads it.
	bufAlloc = 256 << 10
	// maxConns bounds the connections of one device.
	maxConns = 1024
	// maxControl bounds the control packets waiting for guest rx buffers.
	maxControl = 4096
	// firstHostPort is where ports for host-initiated connections start.
	firstHostPort = 1 << 30

	handshakeTimeout = 10 * time.Second
	dialTimeout      = 5 * time.Second
)

// Config describes a vsock device.
type Config struct {
	CID  uint64 // the guest's context ID: 3 or more
	Path string // the VM's Unix socket; guest connections to host port P dial Path_P
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.CID < 3 || c.CID >= 0xffffffff {
		return fmt.Errorf("guest CID %d: want 3 to 4294967294 (0-2 and -1 are reserved)", c.CID)
	}
	if c.Path == "" {
		return errors.New("vsock has no Unix socket path")
	}
	if len(c.Path)+12 > 107 {
		return fmt.Errorf("vsock socket path %q: too long for a Unix socket with a port suffix", c.Path)
	}
	return nil
}

// Device is a virtio-vsock device. It listens on its Unix socket from New to Close;
// connections are served while the driver has the device running.
type Device struct {
	cfg Config
	ln  *net.UnixListener
	log *slog.Logger
	// dial connects to host port port for a guest-initiated connection.
	dial func(ctx context.Context, port uint32) (net.Conn, error)
}

// New listens on cfg.Path (replacing a stale socket there) and returns the device.
func New(cfg Config, log *slog.Logger) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(cfg.Path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(cfg.Path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w", err)
	}
	d := &Device{cfg: cfg, ln: ln, log: log.With("dev", "vsock", "cid", cfg.CID)}
	d.dial = func(ctx context.Context, port uint32) (net.Conn, error) {
		var dl net.Dialer
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		return dl.DialContext(ctx, "unix", cfg.Path+"_"+strconv.FormatUint(uint64(port), 10))
	}
	return d, nil
}

// Close stops listening and removes the socket. Stop the transport first.
func (d *Device) Close() error { return d.ln.Close() }

// Type implements virtio.Device.
func (d *Device) Type() virtio.Type { return virtio.TypeVsock }

// Features implements virtio.Device: stream sockets only, which need no feature bit
// (§5.10.3).
func (d *Device) Features() uint64 { return 0 }

// QueueSizes implements virtio.Device: rx, tx, event (§5.10.2).
func (d *Device) QueueSizes() []uint16 { return []uint16{QueueSize, QueueSize, eventQueueSize} }

// ReadConfig implements virtio.Device: le64 guest_cid (§5.10.4).
func (d *Device) ReadConfig(off uint64, data []byte) {
	var cfg [8]byte
	binary.LittleEndian.PutUint64(cfg[:], d.cfg.CID)
	if off < uint64(len(cfg)) {
		copy(data, cfg[off:])
	}
}

// WriteConfig implements virtio.Device: the configuration is read-only.
func (d *Device) WriteConfig(off uint64, data []byte) {}

// Run implements virtio.Device.
func (d *Device) Run(ctx context.Context, features uint64, qs []*virtio.Queue) error {
	for i, name := range []string{"rx", "tx", "event"} {
		if !qs[i].Ready() {
			return fmt.Errorf("%s queue: %w", name, virtio.ErrNotReady)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	m := newMux(ctx, d, qs[0], qs[1])
	defer func() {
		cancel()
		d.ln.SetDeadline(time.Unix(1, 0)) // stops the accept loop
		m.closeAll()
		m.wg.Wait()
	}()
	d.ln.SetDeadline(time.Time{})
	m.wg.Add(1)
	go m.accept()
	return m.loop()
}
