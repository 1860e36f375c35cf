package net

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hullvm/hull/virtio"
)

// Feature bits (§5.1.3).
const (
	featMAC      = 1 << 5  // VIRTIO_NET_F_MAC
	featMrgRxbuf = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF
	featStatus   = 1 << 16 // VIRTIO_NET_F_STATUS
)

const (
	// QueueSize is the size of the rx and tx queues.
	QueueSize = 256
	// MaxFrame bounds one frame with its header, either way: no offloads are offered,
	// so frames are at most an MTU of 1500 plus Ethernet and VLAN headers; we allow
	// jumbo frames up to 64 KiB.
	MaxFrame = HeaderSize + 65535
	// linkUp is VIRTIO_NET_S_LINK_UP.
	linkUp = 1
)

// Backend is where frames go: a tap opened by OpenTap, or anything that reads and
// writes one frame (with its 12-byte virtio_net_hdr) per call and honours deadlines,
// which is how a reset interrupts it (an *os.File on a socketpair in tests).
type Backend interface {
	io.ReadWriter
	SetDeadline(time.Time) error
}

// Config describes a network device.
type Config struct {
	Backend Backend
	MAC     [6]byte
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Backend == nil {
		return errors.New("network device has no backend (tap)")
	}
	if c.MAC[0]&1 != 0 {
		return fmt.Errorf("MAC %x: a multicast address", c.MAC)
	}
	if c.MAC == [6]byte{} {
		return errors.New("MAC is all zeros")
	}
	return nil
}

// Stats counts frames.
type Stats struct {
	RxFrames, TxFrames, RxDropped, TxDropped atomic.Uint64
}

// Device is a virtio-net device with one rx and one tx queue (§5.1.2) and no control
// queue or offloads.
type Device struct {
	cfg    Config
	config [8]byte // mac, status (§5.1.4)
	log    *slog.Logger
	Stats  Stats
}

// New returns a network device for cfg.
func New(cfg Config, log *slog.Logger) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Device{cfg: cfg, log: log.With("dev", "net")}
	copy(d.config[:6], cfg.MAC[:])
	binary.LittleEndian.PutUint16(d.config[6:], linkUp)
	return d, nil
}

// Type implements virtio.Device.
func (d *Device) Type() virtio.Type { return virtio.TypeNet }

// Features implements virtio.Device.
func (d *Device) Features() uint64 { return featMAC | featMrgRxbuf | featStatus }

// QueueSizes implements virtio.Device: receiveq1, transmitq1.
func (d *Device) QueueSizes() []uint16 { return []uint16{QueueSize, QueueSize} }

// ReadConfig implements virtio.Device.
func (d *Device) ReadConfig(off uint64, data []byte) {
	if off < uint64(len(d.config)) {
		copy(data, d.config[off:])
	}
}

// WriteConfig implements virtio.Device: the MAC is not writable (no
// VIRTIO_NET_F_CTRL_MAC_ADDR).
func (d *Device) WriteConfig(off uint64, data []byte) {}

// Run implements virtio.Device: one goroutine moves tx frames to the backend, another
// backend frames to rx buffers.
func (d *Device) Run(ctx context.Context, features uint64, qs []*virtio.Queue) error {
	for i, name := range []string{"rx", "tx"} {
		if !qs[i].Ready() {
			return fmt.Errorf("%s queue: %w", name, virtio.ErrNotReady)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := d.cfg.Backend
	b.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { b.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer cancel()
		errs[0] = d.rx(ctx, qs[0], features&featMrgRxbuf != 0)
	}()
	go func() {
		defer wg.Done()
		defer cancel()
		errs[1] = d.tx(ctx, qs[1])
	}()
	wg.Wait()
	return errors.Join(errs...)
}

// tx sends every frame the guest queues (§5.1.6.2).
func (d *Device) tx(ctx context.Context, q *virtio.Queue) error {
	buf := make([]byte, MaxFrame)
	for {
		for {
			c, err := q.Pop()
			if errors.Is(err, virtio.ErrBadChain) {
				d.Stats.TxDropped.Add(1)
				continue
			}
			if err != nil {
				return err
			}
			if c == nil {
				break
			}
			d.send(c, buf)
			if err := q.Push(c.Head, 0); err != nil {
				return err
			}
		}
		q.Signal()
		select {
		case <-ctx.Done():
			return nil
		case <-q.Kicks():
		}
	}
}

func (d *Device) send(c *virtio.Chain, buf []byte) {
	n := c.Readable()
	if n < HeaderSize || n > MaxFrame {
		d.Stats.TxDropped.Add(1)
		return
	}
	io.ReadFull(c, buf[:n])
	// No offloads were negotiated: the header asks for nothing (§5.1.6.2). Clearing it
	// keeps a hostile guest's GSO requests away from the host kernel.
	clear(buf[:HeaderSize])
	if _, err := d.cfg.Backend.Write(buf[:n]); err != nil {
		d.Stats.TxDropped.Add(1)
		return
	}
	d.Stats.TxFrames.Add(1)
}

// rx moves frames from the backend into the guest's buffers (§5.1.6.3), waiting for
// buffers rather than dropping frames.
func (d *Device) rx(ctx context.Context, q *virtio.Queue, mergeable bool) error {
	buf := make([]byte, MaxFrame)
	for {
		n, err := d.cfg.Backend.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// A previous run's stop landed late: clear it.
				d.cfg.Backend.SetDeadline(time.Time{})
				continue
			}
			return fmt.Errorf("read frame: %w", err)
		}
		if n < HeaderSize {
			d.Stats.RxDropped.Add(1)
			continue
		}
		ok, err := d.deliver(ctx, q, buf[:n], mergeable)
		if err != nil || ctx.Err() != nil {
			return err
		}
		if ok {
			d.Stats.RxFrames.Add(1)
		} else {
			d.Stats.RxDropped.Add(1)
		}
		q.Signal()
	}
}

// next waits for an rx buffer; nil once ctx is done.
func next(ctx context.Context, q *virtio.Queue) (*virtio.Chain, error) {
	for {
		c, err := q.Pop()
		if errors.Is(err, virtio.ErrBadChain) {
			continue
		}
		if err != nil || c != nil {
			return c, err
		}
		q.Signal()
		select {
		case <-ctx.Done():
			return nil, nil
		case <-q.Kicks():
		}
	}
}

// deliver writes one frame (header first) into one rx buffer, or with
// VIRTIO_NET_F_MRG_RXBUF into as many as it takes, setting num_buffers (§5.1.6.3.1).
// A frame that does not fit is dropped, its buffers returned empty.
func (d *Device) deliver(ctx context.Context, q *virtio.Queue, frame []byte, mergeable bool) (bool, error) {
	var chains []*virtio.Chain
	var room uint64
	for room < uint64(len(frame)) {
		if len(chains) == int(q.Size()) || (!mergeable && len(chains) == 1) {
			break
		}
		c, err := next(ctx, q)
		if c == nil {
			return false, err
		}
		chains = append(chains, c)
		room += c.Writable()
	}
	fits := room >= uint64(len(frame)) && chains[0].Writable() >= HeaderSize
	if fits {
		binary.LittleEndian.PutUint16(frame[10:], uint16(len(chains)))
		rest := frame
		for _, c := range chains {
			k, _ := c.Write(rest)
			rest = rest[k:]
		}
	}
	for _, c := range chains {
		var err error
		if fits {
			err = q.Done(c)
		} else {
			err = q.Push(c.Head, 0)
		}
		if err != nil {
			return false, err
		}
	}
	return fits, nil
}
