package vmm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
)

// Limits a Config is checked against.
const (
	MaxCPUs        = 64       // the MP table and the APIC ids we hand out
	MinMemoryMiB   = 16       // below this no Linux kernel fits
	MaxMemoryMiB   = 64 << 10 // 64 GiB
	MaxDisks       = 16       // virtio-mmio slots for disks
	DefaultCmdline = "console=ttyS0 reboot=k panic=-1"
)

// Config describes one microVM. It is plain data: the CLI (or a test) fills it and
// New checks it with Validate.
type Config struct {
	// Kernel is the path of a bzImage or an ELF vmlinux with a PVH entry note.
	Kernel string
	// Initrd is the path of an initramfs (optional).
	Initrd string
	// Cmdline is the kernel command line. New appends the virtio_mmio.device= entries
	// for the devices it attaches; it adds nothing else.
	Cmdline string
	// CPUs is the number of vCPUs (1 when zero).
	CPUs int
	// MemoryMiB is the guest RAM in MiB (256 when zero).
	MemoryMiB int
	// Disks are attached as virtio-blk devices, in order (/dev/vda, /dev/vdb...).
	Disks []Disk
	// RNG attaches a virtio-rng device fed from the host's getrandom.
	RNG bool
	// Vsock attaches a virtio-vsock device (optional).
	Vsock *Vsock
	// Nets attach virtio-net devices, each backed by a tap interface.
	Nets []Net
	// Console receives the guest's serial output (COM1); nil discards it.
	Console io.Writer
	// ConsoleIn feeds the guest's serial input; nil means no input.
	ConsoleIn io.Reader
	// Log receives the VMM's own messages; nil discards them.
	Log *slog.Logger
}

// Disk is one virtio-blk device backed by a host file.
type Disk struct {
	Path     string
	ReadOnly bool
	// ID is the serial the guest sees (VIRTIO_BLK_F_ID, /sys/block/vdX/serial); at most
	// 20 bytes.
	ID string
}

// Vsock is a virtio-vsock device bridged to Unix sockets, as Firecracker does: the
// host connects to UDS and writes "CONNECT <port>\n" to reach a guest listener; a guest
// connection to host port P is dialed to UDS_P.
type Vsock struct {
	CID uint32 // the guest's context ID, 3 or more
	UDS string // the VM's Unix socket path, created by New
}

// Net is one virtio-net device backed by a tap interface on the host. The tap is
// created (or, if it exists and is free, opened) by New and goes away with the VM unless
// it was made persistent; bringing it up and routing it is the caller's business.
type Net struct {
	Tap string           // interface name, at most 15 bytes
	MAC net.HardwareAddr // the guest's address; nil derives a locally administered one
}

// ErrInvalidConfig wraps every Validate failure.
var ErrInvalidConfig = errors.New("invalid VM config")

// Validate checks the config without touching the host: New opens the paths.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if c.Kernel == "" {
		return bad("no kernel: pass the path of a bzImage or a PVH vmlinux")
	}
	if c.CPUs < 0 || c.CPUs > MaxCPUs {
		return bad("%d CPUs: want 1 to %d", c.CPUs, MaxCPUs)
	}
	if c.MemoryMiB != 0 && (c.MemoryMiB < MinMemoryMiB || c.MemoryMiB > MaxMemoryMiB) {
		return bad("%d MiB of memory: want %d MiB to %d MiB", c.MemoryMiB, MinMemoryMiB, MaxMemoryMiB)
	}
	if n := c.virtioDevices(); n > MaxVirtio {
		return bad("%d virtio devices (disks and rng): at most %d", n, MaxVirtio)
	}
	ids := map[string]bool{}
	for i, d := range c.Disks {
		if d.Path == "" {
			return bad("disk %d has no path", i)
		}
		if len(d.ID) > 20 {
			return bad("disk %s: id %q is longer than 20 bytes", d.Path, d.ID)
		}
		if d.ID != "" && ids[d.ID] {
			return bad("disk %s: id %q is used twice", d.Path, d.ID)
		}
		ids[d.ID] = true
	}
	if v := c.Vsock; v != nil {
		if v.CID < 3 || v.CID == ^uint32(0) {
			return bad("vsock CID %d: want 3 to %d", v.CID, ^uint32(0)-1)
		}
		if v.UDS == "" {
			return bad("vsock has no Unix socket path")
		}
	}
	taps := map[string]bool{}
	for i, n := range c.Nets {
		switch {
		case n.Tap == "" || len(n.Tap) > 15 || strings.ContainsAny(n.Tap, "/ \x00"):
			return bad("network %d: tap name %q: want 1 to 15 bytes, no '/' or spaces", i, n.Tap)
		case taps[n.Tap]:
			return bad("network %d: tap %s is used twice", i, n.Tap)
		case n.MAC != nil && (len(n.MAC) != 6 || n.MAC[0]&1 != 0):
			return bad("network %d: MAC %s: want a 6-byte unicast address", i, n.MAC)
		}
		taps[n.Tap] = true
	}
	if strings.ContainsRune(c.Cmdline, 0) {
		return bad("kernel command line contains a NUL byte")
	}
	return nil
}

// virtioDevices is how many virtio-mmio windows the config needs.
func (c Config) virtioDevices() int {
	n := len(c.Disks)
	if c.RNG {
		n++
	}
	if c.Vsock != nil {
		n++
	}
	return n + len(c.Nets)
}

func (c Config) cpus() int {
	if c.CPUs == 0 {
		return 1
	}
	return c.CPUs
}

func (c Config) memoryBytes() uint64 {
	if c.MemoryMiB == 0 {
		return 256 << 20
	}
	return uint64(c.MemoryMiB) << 20
}
