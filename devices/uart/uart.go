package uart

import (
	"context"
	"io"
	"sync"
)

// The PC's first serial port.
const (
	COM1 = 0x3f8 // base I/O port; the UART decodes COM1 to COM1+7
	IRQ  = 4     // its ISA interrupt line
	Size = 8     // I/O ports per UART
)

// Register offsets from the base port (PC16550D data sheet, table 2). DLAB is LCR bit 7.
const (
	regData = 0 // RBR (read) / THR (write); DLL when DLAB
	regIER  = 1 // interrupt enable; DLM when DLAB
	regIIR  = 2 // interrupt identification (read) / FCR (write)
	regLCR  = 3
	regMCR  = 4
	regLSR  = 5
	regMSR  = 6
	regSCR  = 7
)

// Register bits.
const (
	ierRDA  = 1 << 0 // received data available
	ierTHRE = 1 << 1 // transmitter holding register empty
	ierMask = 0x0f

	iirNone    = 0x01 // no interrupt pending
	iirTHRE    = 0x02
	iirRDA     = 0x04
	iirFIFOsOn = 0xc0

	fcrEnable = 1 << 0

	lcrDLAB = 1 << 7

	mcrDTR  = 1 << 0
	mcrRTS  = 1 << 1
	mcrOUT1 = 1 << 2
	mcrOUT2 = 1 << 3
	mcrLoop = 1 << 4

	lsrDR   = 1 << 0 // data ready
	lsrOE   = 1 << 1 // overrun
	lsrTHRE = 1 << 5
	lsrTEMT = 1 << 6

	msrCTS = 1 << 4
	msrDSR = 1 << 5
	msrRI  = 1 << 6
	msrDCD = 1 << 7
)

// RxCap is how many received bytes the UART buffers for the guest (a 16550A has a
// 16-byte FIFO; a deeper one loses nothing when the host pastes a line).
const RxCap = 1024

// UART is a 16550A-compatible serial port. The guest's transmitted bytes go to an
// io.Writer at once (the transmitter is always empty); bytes from the host wait in a
// receive FIFO. Its interrupt output is reported as a level through a callback: with
// the edge-triggered ISA line in KVM's PIC and IOAPIC, each rise is one interrupt, as
// on a PC. It is safe for concurrent use.
type UART struct {
	out io.Writer
	irq func(high bool)

	mu      sync.Mutex
	ier     uint8
	lcr     uint8
	mcr     uint8
	scr     uint8
	dll     uint8
	dlm     uint8
	fcr     uint8
	lsrErr  uint8 // sticky LSR error bits, cleared by reading LSR
	thre    bool  // a THRE interrupt is pending
	rx      []byte
	line    bool          // current interrupt output level
	space   chan struct{} // signaled when the guest reads from the receive FIFO
	dropped uint64        // bytes the writer refused
	tx      [1]byte       // the byte being written, kept here so it does not escape

	onBatchable func(bool) // told when batchable changes
	batchable   bool
}

// New returns a UART whose output goes to out (nil discards it) and whose interrupt
// line level is reported through irq (nil for none). irq is called with the UART's lock
// held: it must not call back into the UART.
func New(out io.Writer, irq func(high bool)) *UART {
	if out == nil {
		out = io.Discard
	}
	if irq == nil {
		irq = func(bool) {}
	}
	// DLL 1: the divisor for 115200 baud, Linux's default for the console.
	return &UART{out: out, irq: irq, dll: 1, space: make(chan struct{}, 1), batchable: true}
}

// Batchable reports whether the guest's writes to the data register may reach Write
// late, batched, yet in order with its other accesses: they then only transmit, and
// nothing the guest can see depends on when. That holds while the guest polls the
// line status: no THRE interrupt is enabled (it would be raised by each write), the
// divisor latch is not selected and the UART is not in loopback.
func (u *UART) Batchable() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.batchable
}

// OnBatchable sets fn to be told whenever Batchable changes, with the UART's lock held
// and before the guest's access that changed it completes: fn must not call back into
// the UART.
func (u *UART) OnBatchable(fn func(bool)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.onBatchable = fn
}

// Read handles a guest read from the register at offset (0 to 7) from the base port.
// Wider accesses read the register into the first byte and zero the rest.
func (u *UART) Read(offset uint8, data []byte) {
	if len(data) == 0 {
		return
	}
	clear(data)
	u.mu.Lock()
	defer u.mu.Unlock()
	data[0] = u.readLocked(offset)
	u.updateLocked()
}

func (u *UART) readLocked(offset uint8) uint8 {
	switch offset {
	case regData:
		if u.lcr&lcrDLAB != 0 {
			return u.dll
		}
		if len(u.rx) == 0 {
			return 0
		}
		b := u.rx[0]
		u.rx = u.rx[1:]
		if len(u.rx) == 0 {
			u.rx = nil // let the backing array go
		}
		select {
		case u.space <- struct{}{}:
		default:
		}
		return b
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			return u.dlm
		}
		return u.ier
	case regIIR:
		v := u.iirLocked()
		if v&0x0f == iirTHRE {
			u.thre = false // reading IIR with THRE as the source clears it
		}
		if u.fcr&fcrEnable != 0 {
			v |= iirFIFOsOn
		}
		return v
	case regLCR:
		return u.lcr
	case regMCR:
		return u.mcr
	case regLSR:
		v := uint8(lsrTHRE|lsrTEMT) | u.lsrErr
		if len(u.rx) > 0 {
			v |= lsrDR
		}
		u.lsrErr = 0
		return v
	case regMSR:
		if u.mcr&mcrLoop != 0 {
			// Loopback (data sheet 8.6): the modem inputs follow the modem outputs.
			var v uint8
			if u.mcr&mcrRTS != 0 {
				v |= msrCTS
			}
			if u.mcr&mcrDTR != 0 {
				v |= msrDSR
			}
			if u.mcr&mcrOUT1 != 0 {
				v |= msrRI
			}
			if u.mcr&mcrOUT2 != 0 {
				v |= msrDCD
			}
			return v
		}
		return msrDCD | msrDSR | msrCTS // a terminal is always there
	case regSCR:
		return u.scr
	}
	return 0
}

// Write handles a guest write to the register at offset; only the first byte counts.
func (u *UART) Write(offset uint8, data []byte) {
	if len(data) == 0 {
		return
	}
	v := data[0]
	u.mu.Lock()
	defer u.mu.Unlock()
	switch offset {
	case regData:
		if u.lcr&lcrDLAB != 0 {
			u.dll = v
			break
		}
		u.tx[0] = v
		if u.mcr&mcrLoop != 0 {
			u.receiveLocked(u.tx[:])
		} else if _, err := u.out.Write(u.tx[:]); err != nil {
			u.dropped++
		}
		// The byte left at once: the holding register is empty again.
		u.thre = true
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			u.dlm = v
			break
		}
		// Enabling THRE with the holding register empty raises it at once (8250
		// drivers, Linux's among them, rely on this to start transmitting).
		if v&ierTHRE != 0 && u.ier&ierTHRE == 0 {
			u.thre = true
		}
		u.ier = v & ierMask
	case regIIR:
		u.fcr = v
		if v&(1<<1) != 0 { // clear the receive FIFO
			u.rx = nil
		}
	case regLCR:
		u.lcr = v
	case regMCR:
		u.mcr = v & 0x1f
	case regSCR:
		u.scr = v
	}
	u.updateLocked()
	if b := u.ier&ierTHRE == 0 && u.lcr&lcrDLAB == 0 && u.mcr&mcrLoop == 0; b != u.batchable {
		u.batchable = b
		if u.onBatchable != nil {
			u.onBatchable(b)
		}
	}
}

// iirLocked is the highest-priority pending interrupt (data sheet table 4).
func (u *UART) iirLocked() uint8 {
	switch {
	case u.ier&ierRDA != 0 && len(u.rx) > 0:
		return iirRDA
	case u.ier&ierTHRE != 0 && u.thre:
		return iirTHRE
	}
	return iirNone
}

// updateLocked drives the interrupt output to match the pending interrupts.
func (u *UART) updateLocked() {
	high := u.iirLocked() != iirNone
	if high != u.line {
		u.line = high
		u.irq(high)
	}
}

func (u *UART) receiveLocked(p []byte) int {
	n := min(len(p), RxCap-len(u.rx))
	if n < len(p) && u.mcr&mcrLoop != 0 {
		u.lsrErr |= lsrOE
	}
	u.rx = append(u.rx, p[:n]...)
	return n
}

// Receive queues bytes from the host for the guest to read and returns how many fit
// (at most RxCap wait at once).
func (u *UART) Receive(p []byte) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := u.receiveLocked(p)
	u.updateLocked()
	return n
}

// Feed copies r into the receive FIFO until r fails or ends, or ctx is done, waiting
// for the guest to drain the FIFO when it is full. A Read blocked in r keeps Feed's
// goroutine alive until r returns: pass a reader that ends, or one that may leak.
func (u *UART) Feed(ctx context.Context, r io.Reader) error {
	buf := make([]byte, 256)
	for {
		n, err := r.Read(buf)
		for p := buf[:n]; len(p) > 0; {
			p = p[u.Receive(p):]
			if len(p) == 0 {
				break
			}
			select {
			case <-u.space:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// Dropped counts output bytes the writer refused.
func (u *UART) Dropped() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dropped
}
