package blk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/virtio"
)

// Feature bits (§5.2.3).
const (
	featSizeMax = 1 << 1  // VIRTIO_BLK_F_SIZE_MAX
	featSegMax  = 1 << 2  // VIRTIO_BLK_F_SEG_MAX
	featRO      = 1 << 5  // VIRTIO_BLK_F_RO
	featBlkSize = 1 << 6  // VIRTIO_BLK_F_BLK_SIZE
	featFlush   = 1 << 9  // VIRTIO_BLK_F_FLUSH
	featDiscard = 1 << 13 // VIRTIO_BLK_F_DISCARD
	featZeroes  = 1 << 14 // VIRTIO_BLK_F_WRITE_ZEROES
)

// Request types (§5.2.6).
const (
	typeIn      = 0
	typeOut     = 1
	typeFlush   = 4
	typeGetID   = 8
	typeDiscard = 11
	typeZeroes  = 13
)

// Request status (§5.2.6).
const (
	statusOK     = 0
	statusIOErr  = 1
	statusUnsupp = 2
)

const (
	// SectorSize is the unit of capacity and request offsets (§5.2.4).
	SectorSize = 512
	// IDSize is the length of a GET_ID reply, VIRTIO_BLK_ID_BYTES.
	IDSize = 20
	// QueueSize is the size of the request queue.
	QueueSize = 256
	// sizeMax bounds one data segment; segMax the segments of a request.
	sizeMax = 1 << 20
	segMax  = QueueSize - 2
	// headerSize is struct virtio_blk_req's header: le32 type, le32 reserved, le64 sector.
	headerSize = 16
	// rangeSize is struct virtio_blk_discard_write_zeroes: le64 sector, le32
	// num_sectors, le32 flags (§5.2.6). maxRanges bounds one request's ranges;
	// maxRangeSectors one range.
	rangeSize       = 16
	maxRanges       = 64
	maxRangeSectors = 1 << 22 // 2 GiB
	// unmap is VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP.
	unmap = 1
)

// Config describes one disk.
type Config struct {
	File     *os.File // a raw image; the device does not close it
	ReadOnly bool
	ID       string // the serial, at most IDSize bytes
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.File == nil {
		return errors.New("disk has no backing file")
	}
	if len(c.ID) > IDSize {
		return fmt.Errorf("disk id %q: longer than %d bytes", c.ID, IDSize)
	}
	return nil
}

// Stats counts requests.
type Stats struct {
	Reads, Writes, Flushes, Errors atomic.Uint64
}

// Device is one virtio-blk disk. Requests are served one at a time by the transport's
// goroutine with pread/pwrite straight into guest memory.
type Device struct {
	cfg     Config
	sectors uint64
	config  [60]byte // virtio_blk_config up to write_zeroes_may_unmap (§5.2.4)
	log     *slog.Logger
	Stats   Stats
}

// New returns a disk device for cfg; its capacity is the file's size in whole sectors.
func New(cfg Config, log *slog.Logger) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fi, err := cfg.File.Stat()
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", cfg.File.Name(), err)
	}
	d := &Device{cfg: cfg, sectors: uint64(fi.Size()) / SectorSize, log: log.With("dev", "blk", "disk", cfg.ID)}
	binary.LittleEndian.PutUint64(d.config[0:], d.sectors)
	binary.LittleEndian.PutUint32(d.config[8:], sizeMax)
	binary.LittleEndian.PutUint32(d.config[12:], segMax)
	binary.LittleEndian.PutUint32(d.config[20:], SectorSize)
	binary.LittleEndian.PutUint32(d.config[36:], maxRangeSectors) // max_discard_sectors
	binary.LittleEndian.PutUint32(d.config[40:], maxRanges)       // max_discard_seg
	binary.LittleEndian.PutUint32(d.config[44:], 1)               // discard_sector_alignment
	binary.LittleEndian.PutUint32(d.config[48:], maxRangeSectors) // max_write_zeroes_sectors
	binary.LittleEndian.PutUint32(d.config[52:], maxRanges)       // max_write_zeroes_seg
	d.config[56] = 1                                              // write_zeroes_may_unmap
	return d, nil
}

// Sectors is the capacity in 512-byte sectors.
func (d *Device) Sectors() uint64 { return d.sectors }

// Type implements virtio.Device.
func (d *Device) Type() virtio.Type { return virtio.TypeBlock }

// Features implements virtio.Device.
func (d *Device) Features() uint64 {
	f := uint64(featSizeMax | featSegMax | featBlkSize | featFlush)
	if d.cfg.ReadOnly {
		f |= featRO
	} else {
		f |= featDiscard | featZeroes
	}
	return f
}

// QueueSizes implements virtio.Device: one request queue.
func (d *Device) QueueSizes() []uint16 { return []uint16{QueueSize} }

// ReadConfig implements virtio.Device.
func (d *Device) ReadConfig(off uint64, data []byte) {
	if off < uint64(len(d.config)) {
		copy(data, d.config[off:])
	}
}

// WriteConfig implements virtio.Device: the configuration is read-only.
func (d *Device) WriteConfig(off uint64, data []byte) {}

// Run implements virtio.Device.
func (d *Device) Run(ctx context.Context, features uint64, qs []*virtio.Queue) error {
	return qs[0].Serve(ctx, d.drain)
}

// drain serves every available request, then interrupts the driver once.
func (d *Device) drain(q *virtio.Queue) error {
	defer q.Signal()
	for {
		c, err := q.Pop()
		if errors.Is(err, virtio.ErrBadChain) {
			d.Stats.Errors.Add(1)
			continue
		}
		if err != nil {
			return err
		}
		if c == nil {
			return nil
		}
		d.Serve(c)
		if err := q.Done(c); err != nil {
			return err
		}
	}
}

// Serve executes one request chain (§5.2.6): a header, data, and a status byte in the
// last writable byte. A chain too short for a header and a status byte gets nothing
// written.
func (d *Device) Serve(c *virtio.Chain) {
	var h [headerSize]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || c.Writable() == 0 {
		d.Stats.Errors.Add(1)
		return
	}
	typ := binary.LittleEndian.Uint32(h[0:])
	sector := binary.LittleEndian.Uint64(h[8:])
	st := d.do(c, typ, sector)
	if st != statusOK {
		d.Stats.Errors.Add(1)
	}
	// The status goes in the last writable byte, after whatever data was written.
	c.WriteFunc(c.Writable()-1, func(b []byte) (int, error) { return len(b), nil })
	c.Write([]byte{st})
}

func (d *Device) do(c *virtio.Chain, typ uint32, sector uint64) byte {
	switch typ {
	case typeIn:
		n := c.Writable() - 1
		off, ok := d.span(sector, n)
		if !ok {
			return statusIOErr
		}
		d.Stats.Reads.Add(1)
		_, err := c.WriteFunc(n, func(b []byte) (int, error) {
			k, err := d.cfg.File.ReadAt(b, off)
			off += int64(k)
			return k, err
		})
		if err != nil {
			return statusIOErr
		}
	case typeOut:
		if d.cfg.ReadOnly {
			return statusIOErr
		}
		n := c.Readable()
		off, ok := d.span(sector, n)
		if !ok {
			return statusIOErr
		}
		d.Stats.Writes.Add(1)
		_, err := c.ReadFunc(n, func(b []byte) (int, error) {
			k, err := d.cfg.File.WriteAt(b, off)
			off += int64(k)
			return k, err
		})
		if err != nil {
			return statusIOErr
		}
	case typeFlush:
		if d.cfg.ReadOnly {
			return statusOK
		}
		d.Stats.Flushes.Add(1)
		if err := unix.Fdatasync(int(d.cfg.File.Fd())); err != nil {
			return statusIOErr
		}
	case typeGetID:
		var id [IDSize]byte
		copy(id[:], d.cfg.ID)
		n := min(c.Writable()-1, IDSize)
		c.Write(id[:n])
	case typeDiscard, typeZeroes:
		if d.cfg.ReadOnly {
			return statusIOErr
		}
		return d.ranges(c, typ)
	default:
		return statusUnsupp
	}
	return statusOK
}

// ranges serves DISCARD and WRITE_ZEROES (§5.2.6): the data is an array of ranges.
// Discarding punches a hole; zeroing punches one too when the driver allows unmapping,
// and otherwise zeroes the range in place. Either way the range then reads as zeros.
func (d *Device) ranges(c *virtio.Chain, typ uint32) byte {
	n := c.Readable()
	if n == 0 || n%rangeSize != 0 || n/rangeSize > maxRanges {
		return statusUnsupp
	}
	var r [rangeSize]byte
	for range n / rangeSize {
		if _, err := io.ReadFull(c, r[:]); err != nil {
			return statusIOErr
		}
		sector := binary.LittleEndian.Uint64(r[0:])
		count := binary.LittleEndian.Uint32(r[8:])
		flags := binary.LittleEndian.Uint32(r[12:])
		if count > maxRangeSectors || flags&^unmap != 0 || (typ == typeDiscard && flags != 0) {
			return statusUnsupp
		}
		off, ok := d.span(sector, uint64(count)*SectorSize)
		if !ok {
			return statusIOErr
		}
		length := int64(count) * SectorSize
		if length == 0 {
			continue
		}
		mode := uint32(unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE)
		if typ == typeZeroes && flags&unmap == 0 {
			mode = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE
		}
		if err := unix.Fallocate(int(d.cfg.File.Fd()), mode, off, length); err != nil {
			if typ == typeDiscard {
				continue // discarding is a hint: the data may stay
			}
			if err := d.zero(off, length); err != nil {
				return statusIOErr
			}
		}
	}
	return statusOK
}

// zero writes zeros over length bytes at off, for files that cannot fallocate.
func (d *Device) zero(off, length int64) error {
	z := make([]byte, min(length, 1<<20))
	for length > 0 {
		k := min(length, int64(len(z)))
		if _, err := d.cfg.File.WriteAt(z[:k], off); err != nil {
			return err
		}
		off += k
		length -= k
	}
	return nil
}

// span checks that n bytes from sector lie on the disk and are whole sectors; it
// returns the byte offset.
func (d *Device) span(sector, n uint64) (int64, bool) {
	if n%SectorSize != 0 || sector > d.sectors || n/SectorSize > d.sectors-sector {
		return 0, false
	}
	return int64(sector * SectorSize), true
}
