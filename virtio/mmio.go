package virtio

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hullvm/hull/memory"
)

// Register offsets of the virtio-mmio transport, version 2 (§4.2.2).
const (
	regMagic          = 0x000
	regVersion        = 0x004
	regDeviceID       = 0x008
	regVendorID       = 0x00c
	regDeviceFeatures = 0x010
	regDeviceFeatSel  = 0x014
	regDriverFeatures = 0x020
	regDriverFeatSel  = 0x024
	regQueueSel       = 0x030
	regQueueNumMax    = 0x034
	regQueueNum       = 0x038
	regQueueReady     = 0x044
	regQueueNotify    = 0x050
	regInterruptStat  = 0x060
	regInterruptACK   = 0x064
	regStatus         = 0x070
	regQueueDescLow   = 0x080
	regQueueDescHigh  = 0x084
	regQueueAvailLow  = 0x090 // QueueDriver
	regQueueAvailHigh = 0x094
	regQueueUsedLow   = 0x0a0 // QueueDevice
	regQueueUsedHigh  = 0x0a4
	regSHMSel         = 0x0ac
	regSHMLenLow      = 0x0b0
	regSHMLenHigh     = 0x0b4
	regSHMBaseLow     = 0x0b8
	regSHMBaseHigh    = 0x0bc
	regConfigGen      = 0x0fc
	regConfig         = 0x100
)

const (
	// NotifyOffset is the QueueNotify register: the VMM registers an ioeventfd at the
	// window's base plus NotifyOffset, 4 bytes wide, with datamatch = queue index, and
	// calls Notify when it fires.
	NotifyOffset = regQueueNotify
	// WindowSize is the size of one device's MMIO window.
	WindowSize = 0x1000

	magic   = 0x74726976 // "virt"
	version = 2          // modern virtio-mmio only (§4.2.2)
	vendor  = 0x6c6c7568 // "hull"
)

// Interrupt status bits (§4.2.2 InterruptStatus).
const (
	intUsedBuffer   = 1
	intConfigChange = 2
)

// transportFeatures are the reserved feature bits the transport and Queue implement.
const transportFeatures = FeatureVersion1 | FeatureEventIdx | FeatureIndirectDesc

// MMIO is the virtio-mmio transport (§4.2) for one device in one 4 KiB window. Read and
// Write run on vCPU threads; Notify on the VMM's ioeventfd goroutine; the device runs in
// its own goroutine from DRIVER_OK until the driver resets it or Close.
type MMIO struct {
	dev    Device
	mem    Memory
	irq    Interrupt
	log    *slog.Logger
	queues []*Queue // fixed at creation; reconfigured while the device is stopped

	isr    atomic.Uint32 // InterruptStatus
	broken atomic.Bool   // DEVICE_NEEDS_RESET

	mu          sync.Mutex
	status      uint32
	devFeatSel  uint32
	drvFeatSel  uint32
	drvFeatures uint64
	queueSel    uint32
	generation  uint32
	cancel      context.CancelFunc // of the running device
	done        chan struct{}      // closed when the device's Run returns
}

// NewMMIO puts dev behind a virtio-mmio window; irq is its interrupt line.
func NewMMIO(dev Device, mem Memory, irq Interrupt, log *slog.Logger) *MMIO {
	m := &MMIO{dev: dev, mem: mem, irq: irq, log: log.With("dev", dev.Type().String())}
	for _, n := range dev.QueueSizes() {
		m.queues = append(m.queues, newQueue(n))
	}
	return m
}

// NumQueues is the number of queues the device has.
func (m *MMIO) NumQueues() int { return len(m.queues) }

// Notify records the driver's notification of queue (its ioeventfd fired). Unknown
// queues are ignored.
func (m *MMIO) Notify(queue int) {
	if queue >= 0 && queue < len(m.queues) {
		m.queues[queue].Notify()
	}
}

// Read handles a guest read of len(data) bytes at offset in the window. Registers are
// read 32 bits at a time; other reads of them return zeros.
func (m *MMIO) Read(offset uint64, data []byte) {
	clear(data)
	if offset >= regConfig {
		m.dev.ReadConfig(offset-regConfig, data)
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	binary.LittleEndian.PutUint32(data, m.readReg(offset))
}

func (m *MMIO) readReg(offset uint64) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch offset {
	case regMagic:
		return magic
	case regVersion:
		return version
	case regDeviceID:
		return uint32(m.dev.Type())
	case regVendorID:
		return vendor
	case regDeviceFeatures:
		f := m.offered()
		switch m.devFeatSel {
		case 0:
			return uint32(f)
		case 1:
			return uint32(f >> 32)
		}
		return 0
	case regQueueNumMax:
		if q := m.selectedLocked(); q != nil {
			return uint32(q.max)
		}
		return 0
	case regQueueReady:
		if q := m.selectedLocked(); q != nil && q.ready {
			return 1
		}
		return 0
	case regInterruptStat:
		return m.isr.Load()
	case regStatus:
		s := m.status
		if m.broken.Load() {
			s |= StatusNeedsReset
		}
		return s
	case regSHMLenLow, regSHMLenHigh, regSHMBaseLow, regSHMBaseHigh:
		return ^uint32(0) // no shared memory regions (§4.2.2)
	case regConfigGen:
		return m.generation
	}
	return 0
}

// Write handles a guest write of data at offset in the window.
func (m *MMIO) Write(offset uint64, data []byte) {
	if offset >= regConfig {
		m.mu.Lock()
		m.dev.WriteConfig(offset-regConfig, data)
		m.mu.Unlock()
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	v := binary.LittleEndian.Uint32(data)
	if offset == regQueueNotify {
		m.Notify(int(v))
		return
	}
	if offset == regInterruptACK {
		m.isr.And(^v)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch offset {
	case regDeviceFeatSel:
		m.devFeatSel = v
	case regDriverFeatSel:
		m.drvFeatSel = v
	case regDriverFeatures:
		if m.status&(StatusFeaturesOK|StatusDriverOK) != 0 || m.drvFeatSel > 1 {
			return
		}
		shift := 32 * m.drvFeatSel
		m.drvFeatures = m.drvFeatures&^(0xffffffff<<shift) | uint64(v)<<shift
	case regQueueSel:
		m.queueSel = v
	case regStatus:
		m.setStatusLocked(v)
	default:
		m.writeQueueLocked(offset, v)
	}
}

// writeQueueLocked sets up the selected queue; it may change only while the queue is
// not ready and the device not running (§4.2.3.2).
func (m *MMIO) writeQueueLocked(offset uint64, v uint32) {
	q := m.selectedLocked()
	if q == nil || m.status&StatusDriverOK != 0 {
		return
	}
	if offset == regQueueReady {
		q.ready = v == 1
		return
	}
	if q.ready {
		return
	}
	lo := func(a *memory.Addr) { *a = *a&^0xffffffff | memory.Addr(v) }
	hi := func(a *memory.Addr) { *a = *a&0xffffffff | memory.Addr(v)<<32 }
	switch offset {
	case regQueueNum:
		q.num = v // checked at DRIVER_OK
	case regQueueDescLow:
		lo(&q.descAddr)
	case regQueueDescHigh:
		hi(&q.descAddr)
	case regQueueAvailLow:
		lo(&q.availAddr)
	case regQueueAvailHigh:
		hi(&q.availAddr)
	case regQueueUsedLow:
		lo(&q.usedAddr)
	case regQueueUsedHigh:
		hi(&q.usedAddr)
	}
}

func (m *MMIO) selectedLocked() *Queue {
	if m.queueSel < uint32(len(m.queues)) {
		return m.queues[m.queueSel]
	}
	return nil
}

func (m *MMIO) offered() uint64 { return m.dev.Features()&(1<<24-1) | transportFeatures }

// setStatusLocked follows the device status state machine (§2.1, §3.1.1): 0 resets;
// FEATURES_OK holds only for an acceptable feature set; DRIVER_OK starts the device.
func (m *MMIO) setStatusLocked(v uint32) {
	if v == 0 {
		m.resetLocked()
		return
	}
	old := m.status
	v &^= StatusNeedsReset
	if v&old != old {
		return // the driver may only set bits, short of a reset
	}
	if v&StatusFeaturesOK != 0 && old&StatusFeaturesOK == 0 {
		f := m.drvFeatures
		if f&^m.offered() != 0 || f&FeatureVersion1 == 0 {
			m.log.Warn("driver features refused", "features", f, "offered", m.offered())
			v &^= StatusFeaturesOK
		}
	}
	m.status = v
	if v&StatusDriverOK != 0 && old&StatusDriverOK == 0 && v&StatusFailed == 0 {
		if v&StatusFeaturesOK == 0 {
			m.failLocked("DRIVER_OK without FEATURES_OK")
			return
		}
		m.startLocked()
	}
}

func (m *MMIO) startLocked() {
	for i, q := range m.queues {
		if !q.ready {
			continue
		}
		if err := q.activate(m.mem, m.drvFeatures, m.signalUsed); err != nil {
			m.failLocked(fmt.Sprintf("queue %d: %v", i, err))
			return
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.cancel, m.done = cancel, done
	features := m.drvFeatures
	go func() {
		defer close(done)
		if err := m.dev.Run(ctx, features, m.queues); err != nil && ctx.Err() == nil {
			m.fail(err.Error())
		}
	}()
}

// stopLocked stops the running device and waits for it.
func (m *MMIO) stopLocked() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.done
	m.cancel, m.done = nil, nil
}

// resetLocked is a device reset (§2.4): the device stops and forgets the driver.
func (m *MMIO) resetLocked() {
	m.stopLocked()
	for _, q := range m.queues {
		q.reset()
	}
	m.status, m.drvFeatures, m.devFeatSel, m.drvFeatSel, m.queueSel = 0, 0, 0, 0, 0
	m.isr.Store(0)
	m.broken.Store(false)
}

func (m *MMIO) failLocked(why string) { m.fail(why) }

// fail sets DEVICE_NEEDS_RESET and tells the driver through a configuration change
// interrupt (§2.1.2). It takes no lock: the device's goroutine calls it.
func (m *MMIO) fail(why string) {
	m.log.Warn("device needs reset", "reason", why)
	m.broken.Store(true)
	m.raise(intConfigChange)
}

func (m *MMIO) signalUsed() { m.raise(intUsedBuffer) }

func (m *MMIO) raise(bit uint32) {
	m.isr.Or(bit)
	if err := m.irq.Trigger(); err != nil {
		m.log.Warn("interrupt", "err", err)
	}
}

// ConfigChanged tells the driver the configuration space changed (§2.5.1): the VMM
// calls it after changing what the device's ReadConfig returns.
func (m *MMIO) ConfigChanged() {
	m.mu.Lock()
	m.generation++
	m.mu.Unlock()
	m.raise(intConfigChange)
}

// Close stops the device (as a reset does) and waits for its goroutines.
func (m *MMIO) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resetLocked()
}
