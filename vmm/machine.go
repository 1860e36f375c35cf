package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hullvm/hull/boot"
	"github.com/hullvm/hull/devices/i8042"
	"github.com/hullvm/hull/devices/uart"
	"github.com/hullvm/hull/kvm"
	"github.com/hullvm/hull/memory"
	"github.com/hullvm/hull/virtio"
	"github.com/hullvm/hull/virtio/blk"
	vnet "github.com/hullvm/hull/virtio/net"
	"github.com/hullvm/hull/virtio/rng"
	"github.com/hullvm/hull/virtio/vsock"
)

// Machine is a built microVM: memory, the KVM VM and its vCPUs, the devices, and the
// loaded kernel. Run it once, then Close it.
type Machine struct {
	cfg   Config
	log   *slog.Logger
	mem   *memory.Guest
	sys   *kvm.System
	vm    *kvm.VM
	vcpus []*kvm.VCPU
	bus   *bus
	out   *outbox // the console output, written off the vCPU threads
	entry *boot.Entry
	linux bool // the kernel is Linux (LinuxKernel)

	closers []io.Closer    // disk images and device sockets, closed last
	events  []*kvm.EventFD // ioeventfds and irqfds, closed to stop their goroutines
	virtio  []*virtio.MMIO // stopped on Close
	waiters sync.WaitGroup // ioeventfd goroutines
	ran     bool

	done atomic.Bool // an outcome is recorded; vCPUs stop (read on every exit)
	mu   sync.Mutex
	exit Exit  // the outcome, once done, when err is nil
	err  error // the outcome, once done, when the guest failed
}

// discard is the logger used when Config.Log is nil.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// New builds a machine from cfg, reading like a recipe: guest memory, KVM and the VM
// with its in-kernel interrupt controllers and PIT, the devices, the kernel, and the
// vCPUs. ctx bounds the building only; Run takes its own.
//
// The vCPUs are built on a second thread while this one builds the rest: each of
// their ioctls (KVM_GET_SUPPORTED_CPUID alone takes about 0.3 ms under PVM) would
// otherwise wait for the device and kernel set-up, and it for them.
func New(ctx context.Context, cfg Config) (_ *Machine, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = discard()
	}
	m := &Machine{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if m.sys, err = kvm.Open(); err != nil {
		return nil, err
	}
	chip := make(chan bool, 1) // true once the VM has its irqchip, false if it never will
	vcpus := make(chan error, 1)
	go func() { vcpus <- m.createVCPUs(chip) }()
	err = m.build(ctx, chip)
	if verr := <-vcpus; err == nil {
		err = verr
	}
	if err != nil {
		return nil, err
	}
	if err := enter(m.vcpus[0], m.entry); err != nil {
		return nil, err
	}
	if !m.linux {
		m.batchConsole()
	}
	return m, nil
}

// build makes everything but the vCPUs, saying on chip when they can be created.
func (m *Machine) build(ctx context.Context, chip chan<- bool) (err error) {
	ready := false
	defer func() {
		if !ready {
			chip <- false
		}
	}()
	if m.mem, err = memory.New(m.cfg.memoryBytes()); err != nil {
		return err
	}
	if err := m.createVM(); err != nil {
		return err
	}
	chip <- true
	ready = true
	if err := m.vm.CreatePIT2(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.addDevices(); err != nil {
		return err
	}
	return m.loadKernel()
}

// createVM checks what hull needs of KVM, creates the VM, registers guest memory and
// creates the irqchip (PIC, IOAPIC, LAPICs), which the vCPUs need.
func (m *Machine) createVM() error {
	sys := m.sys
	if err := sys.Require(kvm.CapUserMemory, kvm.CapIRQChip, kvm.CapPIT2, kvm.CapIOEventFD,
		kvm.CapIRQFD, kvm.CapSetTSSAddr, kvm.CapExtCPUID, kvm.CapImmediateExit); err != nil {
		return err
	}
	if max, err := sys.Check(kvm.CapMaxVCPUs); err == nil && max > 0 && m.cfg.cpus() > max {
		return fmt.Errorf("%d vCPUs: this host's KVM allows at most %d", m.cfg.cpus(), max)
	}
	var err error
	if m.vm, err = sys.CreateVM(); err != nil {
		return err
	}
	if err := m.vm.SetTSSAddr(tssAddr); err != nil {
		return err
	}
	if err := m.vm.SetIdentityMapAddr(identityMapAddr); err != nil {
		return err
	}
	for i, r := range m.mem.Regions() {
		if err := m.vm.SetMemory(uint32(i), uint64(r.Base), r.Mem); err != nil {
			return err
		}
	}
	return m.vm.CreateIRQChip()
}

// addDevices creates the serial console, the i8042 and the virtio-mmio devices, and
// routes their interrupts and notifications through KVM.
func (m *Machine) addDevices() error {
	b := &bus{log: m.log, debugExit: m.onDebugExit}
	var console io.Writer
	if m.cfg.Console != nil {
		m.out = newOutbox(m.cfg.Console)
		console = m.out
	}
	b.serial = uart.New(console, func(high bool) {
		if err := m.vm.IRQLine(uart.IRQ, high); err != nil {
			m.log.Warn("serial interrupt", "err", err)
		}
	})
	b.kbd = i8042.New(func() { m.finish(Exit{Reason: Reset}, nil) })
	m.bus = b
	for _, d := range m.cfg.Disks {
		flag := os.O_RDWR
		if d.ReadOnly {
			flag = os.O_RDONLY
		}
		f, err := os.OpenFile(d.Path, flag, 0)
		if err != nil {
			return fmt.Errorf("attach disk %s: %w", d.Path, err)
		}
		m.closers = append(m.closers, f)
		dev, err := blk.New(blk.Config{File: f, ReadOnly: d.ReadOnly, ID: d.ID}, m.log)
		if err != nil {
			return fmt.Errorf("attach disk %s: %w", d.Path, err)
		}
		if err := m.attach(dev); err != nil {
			return fmt.Errorf("attach disk %s: %w", d.Path, err)
		}
	}
	if m.cfg.RNG {
		if err := m.attach(rng.New(entropy{})); err != nil {
			return fmt.Errorf("attach virtio-rng: %w", err)
		}
	}
	if v := m.cfg.Vsock; v != nil {
		dev, err := vsock.New(vsock.Config{CID: uint64(v.CID), Path: v.UDS}, m.log)
		if err != nil {
			return fmt.Errorf("attach vsock: %w", err)
		}
		m.closers = append(m.closers, dev)
		if err := m.attach(dev); err != nil {
			return fmt.Errorf("attach vsock: %w", err)
		}
	}
	for i, n := range m.cfg.Nets {
		tap, _, err := vnet.OpenTap(n.Tap)
		if err != nil {
			return fmt.Errorf("attach network %s: %w", n.Tap, err)
		}
		m.closers = append(m.closers, tap)
		var mac [6]byte
		if n.MAC != nil {
			copy(mac[:], n.MAC)
		} else {
			// Locally administered, unicast, distinct per device.
			mac = [6]byte{0x02, 0x68, 0x75, 0x6c, 0x6c, byte(i)}
		}
		dev, err := vnet.New(vnet.Config{Backend: tap, MAC: mac}, m.log)
		if err != nil {
			return fmt.Errorf("attach network %s: %w", n.Tap, err)
		}
		if err := m.attach(dev); err != nil {
			return fmt.Errorf("attach network %s: %w", n.Tap, err)
		}
	}
	return nil
}

// irq is a virtio device's interrupt line: an irqfd, so raising it costs a write and
// no exit.
type irq struct{ e *kvm.EventFD }

func (i irq) Trigger() error { return i.e.Signal() }

// attach puts dev in the next virtio-mmio window with the next interrupt, an irqfd for
// it and an ioeventfd per queue on the QueueNotify register matching the queue index.
func (m *Machine) attach(dev virtio.Device) error {
	i := len(m.bus.virtio)
	if i >= MaxVirtio {
		return fmt.Errorf("%d virtio devices: at most %d", i+1, MaxVirtio)
	}
	base := uint64(VirtioBase) + uint64(i)*VirtioSize
	gsi := uint32(VirtioIRQ + i)
	line, err := kvm.NewEventFD()
	if err != nil {
		return err
	}
	m.events = append(m.events, line)
	if err := m.vm.IRQFD(line, gsi); err != nil {
		return err
	}
	t := virtio.NewMMIO(dev, m.mem, irq{line}, m.log)
	m.virtio = append(m.virtio, t)
	for q := range t.NumQueues() {
		ev, err := kvm.NewEventFD()
		if err != nil {
			return err
		}
		m.events = append(m.events, ev)
		if err := m.vm.IOEventFD(ev, kvm.IOEvent{Addr: base + virtioNotify, Len: 4, Match: true, Data: uint64(q)}); err != nil {
			return err
		}
		m.waiters.Add(1)
		go func() {
			defer m.waiters.Done()
			for {
				if _, err := ev.Wait(); err != nil {
					return // closed by Close
				}
				t.Notify(q)
			}
		}()
	}
	m.bus.virtio = append(m.bus.virtio, t)
	m.log.Debug("virtio device", "dev", dev.Type().String(), "addr", base, "irq", gsi)
	return nil
}

// cmdline is the kernel command line: the configured one (or DefaultCmdline), then
// what describes this machine's hardware to Linux: an i8042 with no mouse, mux or PnP,
// and one virtio_mmio.device= entry per device (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
func (m *Machine) cmdline() string {
	s := m.cfg.Cmdline
	if s == "" {
		s = DefaultCmdline
	}
	parts := []string{s, "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"}
	for i := range m.bus.virtio {
		parts = append(parts, fmt.Sprintf("virtio_mmio.device=4K@%#x:%d", uint64(VirtioBase)+uint64(i)*VirtioSize, VirtioIRQ+i))
	}
	return strings.Join(parts, " ")
}

// loadKernel writes the kernel, initrd, command line and boot tables into memory.
func (m *Machine) loadKernel() error {
	k, err := os.Open(m.cfg.Kernel)
	if err != nil {
		return fmt.Errorf("open kernel: %w", err)
	}
	defer k.Close()
	ks, err := k.Stat()
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if m.linux, err = isLinux(k); err != nil {
		return err
	}
	p := boot.Params{Kernel: k, KernelSize: ks.Size(), Cmdline: m.cmdline(), CPUs: m.cfg.cpus()}
	if m.cfg.Initrd != "" {
		r, err := os.Open(m.cfg.Initrd)
		if err != nil {
			return fmt.Errorf("open initrd: %w", err)
		}
		defer r.Close()
		rs, err := r.Stat()
		if err != nil {
			return fmt.Errorf("initrd: %w", err)
		}
		p.Initrd, p.InitrdSize = r, rs.Size()
	}
	e, err := boot.Load(m.mem, p)
	if err != nil {
		return fmt.Errorf("load %s: %w", m.cfg.Kernel, err)
	}
	m.entry = e
	m.log.Debug("kernel loaded", "mode", e.Mode.String(), "entry", e.RIP, "cmdline", p.Cmdline)
	return nil
}

// Run runs the vCPUs, one goroutine each locked to its OS thread, until the guest
// resets, powers off or writes to DebugExitPort (an Exit), fails (an error, wrapping
// ErrTripleFault or ErrUnhandledExit in a *VCPUError), or ctx is done (Exit{Canceled}).
// Run may be called once.
func (m *Machine) Run(ctx context.Context) (Exit, error) {
	if m.ran {
		return Exit{}, errors.New("machine already ran")
	}
	m.ran = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if m.cfg.ConsoleIn != nil {
		// Ends when Run does, unless blocked reading ConsoleIn: then with the reader.
		go m.bus.serial.Feed(ctx, m.cfg.ConsoleIn)
	}
	var wg sync.WaitGroup
	for _, v := range m.vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.runVCPU(v)
		}()
	}
	stopped := make(chan struct{})
	go func() {
		wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		m.finish(Exit{Reason: Canceled, Code: 130}, nil)
		<-stopped
	}
	m.bus.batch.drain()
	if m.out != nil {
		// Everything the guest wrote is out when Run returns.
		if err := m.out.Flush(); err != nil {
			m.log.Debug("console output", "err", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.Stats()
	m.log.Debug("vm stopped", "reason", m.exit.Reason.String(), "err", m.err, "exits", st.Exits,
		"serial", st.Serial, "batched", st.Batched, "i8042", st.I8042, "other_ports", st.OtherPorts, "virtio", st.Virtio,
		"other_mmio", st.OtherMMIO, "interrupted", st.Interrupted)
	return m.exit, m.err
}

// finish records the machine's outcome, if none is yet, and kicks every vCPU out of
// the guest. Safe from any goroutine, including device callbacks on vCPU threads.
func (m *Machine) finish(e Exit, err error) {
	m.mu.Lock()
	if m.done.Load() {
		m.mu.Unlock()
		return
	}
	m.exit, m.err = e, err
	m.done.Store(true)
	m.mu.Unlock()
	for _, v := range m.vcpus {
		if err := v.Kick(); err != nil {
			m.log.Warn("kick", "err", err)
		}
	}
}

func (m *Machine) stopping() bool { return m.done.Load() }

func (m *Machine) onDebugExit(v byte) {
	m.finish(Exit{Reason: DebugExit, Code: int(v)<<1 | 1, Value: v}, nil)
}

// Close releases everything New acquired. Call it after Run returns.
func (m *Machine) Close() error {
	if m.out != nil {
		m.out.Close()
	}
	for _, t := range m.virtio {
		t.Close()
	}
	for _, e := range m.events {
		e.Close()
	}
	m.waiters.Wait()
	var errs []error
	for _, v := range m.vcpus {
		errs = append(errs, v.Close())
	}
	if m.vm != nil {
		errs = append(errs, m.vm.Close())
	}
	if m.sys != nil {
		errs = append(errs, m.sys.Close())
	}
	if m.mem != nil {
		errs = append(errs, m.mem.Close())
	}
	for _, f := range m.closers {
		errs = append(errs, f.Close())
	}
	m.virtio, m.events, m.vcpus, m.closers = nil, nil, nil, nil
	m.vm, m.sys, m.mem = nil, nil, nil
	return errors.Join(errs...)
}
