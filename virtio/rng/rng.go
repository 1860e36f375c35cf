package rng

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hullvm/hull/virtio"
)

// MaxRequest caps the bytes given for one request: a guest asking for more gets this
// many (the driver accepts short fills).
const MaxRequest = 64 << 10

// QueueSize is the size of the request queue.
const QueueSize = 64

// Device is a virtio-rng device.
type Device struct {
	src io.Reader
}

// New returns an entropy device reading from src (crypto/rand.Reader in a VMM).
func New(src io.Reader) *Device { return &Device{src: src} }

// Type implements virtio.Device.
func (d *Device) Type() virtio.Type { return virtio.TypeEntropy }

// Features implements virtio.Device: none (§5.4.3).
func (d *Device) Features() uint64 { return 0 }

// QueueSizes implements virtio.Device: one request queue (§5.4.2).
func (d *Device) QueueSizes() []uint16 { return []uint16{QueueSize} }

// ReadConfig implements virtio.Device: there is no configuration (§5.4.4).
func (d *Device) ReadConfig(off uint64, data []byte) {}

// WriteConfig implements virtio.Device.
func (d *Device) WriteConfig(off uint64, data []byte) {}

// Run implements virtio.Device.
func (d *Device) Run(ctx context.Context, features uint64, qs []*virtio.Queue) error {
	return qs[0].Serve(ctx, d.drain)
}

func (d *Device) drain(q *virtio.Queue) error {
	defer q.Signal()
	for {
		c, err := q.Pop()
		if errors.Is(err, virtio.ErrBadChain) {
			continue
		}
		if err != nil {
			return err
		}
		if c == nil {
			return nil
		}
		// §5.4.6: the device fills device-writable buffers; readable ones are ignored.
		n := min(c.Writable(), MaxRequest)
		if _, err := c.WriteFunc(n, func(b []byte) (int, error) { return io.ReadFull(d.src, b) }); err != nil {
			return fmt.Errorf("entropy source: %w", err)
		}
		if err := q.Done(c); err != nil {
			return err
		}
	}
}
