package vmm

import (
	"context"
	"log/slog"

	"github.com/hullvm/hull/devices/i8042"
	"github.com/hullvm/hull/devices/uart"
	"github.com/hullvm/hull/kvm"
	"github.com/hullvm/hull/virtio"
)

// Ports a PC guest probes that the VMM answers without a device: reads return
// ioDefault (all ones: nothing there), except the CMOS/RTC pair which reads as zeros so
// Linux's RTC code sees no update in progress. Writes are dropped. The PIC, PIT and
// speaker port (0x20-0x21, 0x40-0x43, 0x61, 0xa0-0xa1, 0x4d0-0x4d1) never exit: KVM
// emulates them.
const (
	postPort  = 0x80 // POST codes and Linux's I/O delay: written constantly, never logged
	cmosIndex = 0x70
	cmosData  = 0x71
	ioDefault = 0xff
)

// bus routes a vCPU's port I/O and MMIO exits to devices. Its tables are fixed once the
// machine is built; devices lock themselves.
type bus struct {
	log    *slog.Logger
	serial *uart.UART
	kbd    *i8042.Controller
	virtio []*virtio.MMIO // window i at VirtioBase + i*VirtioSize
	// debugExit is called for a write to DebugExitPort.
	debugExit func(v byte)
	count     counters
	batch     *batcher // nil unless the console is batched
}

// io handles one port I/O exit; string I/O (Count > 1) is done element by element.
func (b *bus) io(x *kvm.IO) {
	for i := 0; i < x.Count; i++ {
		d := x.Data[i*x.Size : (i+1)*x.Size]
		if x.Out {
			b.out(x.Port, d)
		} else {
			b.in(x.Port, d)
		}
	}
}

func (b *bus) in(port uint16, d []byte) {
	switch {
	case port >= uart.COM1 && port < uart.COM1+uart.Size:
		b.count.serial.Add(1)
		b.serial.Read(uint8(port-uart.COM1), d)
	case port == i8042.DataPort || port == i8042.CommandPort:
		b.count.i8042.Add(1)
		b.kbd.Read(port, d)
	case port == cmosIndex || port == cmosData:
		b.count.otherPorts.Add(1)
		clear(d)
	default:
		b.count.otherPorts.Add(1)
		for i := range d {
			d[i] = ioDefault
		}
		if b.debugOn() {
			b.log.Debug("unhandled port read", "port", port, "size", len(d))
		}
	}
}

func (b *bus) out(port uint16, d []byte) {
	switch {
	case port >= uart.COM1 && port < uart.COM1+uart.Size:
		b.count.serial.Add(1)
		b.serial.Write(uint8(port-uart.COM1), d)
	case port == i8042.DataPort || port == i8042.CommandPort:
		b.count.i8042.Add(1)
		b.kbd.Write(port, d)
	case port == DebugExitPort:
		b.debugExit(d[0])
	case port == postPort, port == cmosIndex, port == cmosData:
		b.count.otherPorts.Add(1)
	default:
		b.count.otherPorts.Add(1)
		if b.debugOn() {
			b.log.Debug("unhandled port write", "port", port, "size", len(d))
		}
	}
}

// mmio handles one MMIO exit.
func (b *bus) mmio(x *kvm.MMIO) {
	if x.Addr >= uint64(VirtioBase) {
		i := (x.Addr - uint64(VirtioBase)) / VirtioSize
		if i < uint64(len(b.virtio)) {
			b.count.virtio.Add(1)
			off := (x.Addr - uint64(VirtioBase)) % VirtioSize
			if x.Write {
				b.virtio[i].Write(off, x.Data)
			} else {
				b.virtio[i].Read(off, x.Data)
			}
			return
		}
	}
	b.count.otherMMIO.Add(1)
	if !x.Write {
		clear(x.Data)
	}
	if b.debugOn() {
		b.log.Debug("unhandled MMIO", "addr", x.Addr, "write", x.Write, "len", len(x.Data))
	}
}

// debugOn reports whether unhandled accesses are logged. Callers check it before
// building the log arguments, so a guest probing absent hardware costs no allocation.
func (b *bus) debugOn() bool { return b.log.Enabled(context.Background(), slog.LevelDebug) }
