package virtio

import (
	"context"
	"errors"
	"strconv"

	"github.com/hullvm/hull/memory"
)

// Memory is the guest memory a device reaches: *memory.Guest satisfies it. Slice returns
// the n bytes at a, aliasing guest memory, or an error if they do not lie wholly inside
// guest RAM. The guest may change the bytes at any time: a device copies what it parses.
type Memory interface {
	Slice(a memory.Addr, n uint64) ([]byte, error)
}

// Interrupt is a device's interrupt line (the VMM implements it with an irqfd). Trigger
// must not block.
type Interrupt interface {
	Trigger() error
}

// Type is a virtio device ID (§5).
type Type uint32

// Device IDs (§5).
const (
	TypeNet     Type = 1
	TypeBlock   Type = 2
	TypeEntropy Type = 4
	TypeVsock   Type = 19
)

// Feature bits reserved for the transport and the queues (§6). The MMIO transport offers
// them for every device.
const (
	FeatureIndirectDesc = 1 << 28 // VIRTIO_F_INDIRECT_DESC (§2.7.5.3)
	FeatureEventIdx     = 1 << 29 // VIRTIO_F_EVENT_IDX (§2.7.7, §2.7.10)
	FeatureVersion1     = 1 << 32 // VIRTIO_F_VERSION_1: a modern (non-legacy) device
)

// Device status bits (§2.1).
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 64
	StatusFailed      = 128
)

// Device is one virtio device behind a transport. The transport calls every method except
// Run on the vCPU thread; they must not block.
type Device interface {
	// Type is the device ID.
	Type() Type
	// Features are the device-specific feature bits offered (bits 0 to 23); the
	// transport adds the reserved bits it implements.
	Features() uint64
	// QueueSizes holds the maximum size of each queue, each a power of 2; its length is
	// the number of queues.
	QueueSizes() []uint16
	// ReadConfig and WriteConfig access the device configuration space (§2.5) at
	// offset; out-of-range bytes read as zero and are ignored when written.
	ReadConfig(offset uint64, data []byte)
	WriteConfig(offset uint64, data []byte)
	// Run processes the queues (qs[i] is queue i; check Ready) with the negotiated
	// features until ctx is done, from a goroutine the transport owns. It must stop any
	// goroutine it started and return promptly once ctx is done: the driver's reset
	// waits for it. An error before then means the device is broken; the transport
	// sets DEVICE_NEEDS_RESET (§2.1.2).
	Run(ctx context.Context, features uint64, qs []*Queue) error
}

// ErrBadChain wraps errors about one malformed descriptor chain: the queue has already
// returned the chain to the driver with nothing written, and the device may go on.
var ErrBadChain = errors.New("bad descriptor chain")

// ErrBadRing wraps errors about the rings themselves (an available index that jumps by
// more than the queue size, a head out of range): the queue cannot go on and the device
// must stop, the transport setting DEVICE_NEEDS_RESET.
var ErrBadRing = errors.New("bad virtqueue ring")

// ErrNotReady is returned by Run when a queue the device needs was not set up.
var ErrNotReady = errors.New("virtqueue not ready")

// String names the device type.
func (t Type) String() string {
	switch t {
	case TypeNet:
		return "net"
	case TypeBlock:
		return "blk"
	case TypeEntropy:
		return "rng"
	case TypeVsock:
		return "vsock"
	}
	return "type" + strconv.Itoa(int(t))
}
