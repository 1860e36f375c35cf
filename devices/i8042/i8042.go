package i8042

import "sync"

// I/O ports of the controller.
const (
	DataPort    = 0x60
	CommandPort = 0x64 // status register when read
)

// Controller commands (written to CommandPort) and replies.
const (
	cmdReadCTR      = 0x20
	cmdWriteCTR     = 0x60
	cmdDisableAux   = 0xa7
	cmdEnableAux    = 0xa8
	cmdTestAux      = 0xa9
	cmdSelfTest     = 0xaa
	cmdTestKbd      = 0xab
	cmdDisableKbd   = 0xad
	cmdEnableKbd    = 0xae
	cmdReadOutPort  = 0xd0
	cmdWriteOutPort = 0xd1
	cmdResetCPU     = 0xfe

	selfTestOK = 0x55
	kbdAck     = 0xfa

	statusOBF    = 1 << 0 // output buffer full: the data port has a byte
	statusSys    = 1 << 2 // system flag: POST passed
	statusCmd    = 1 << 3 // last write was to the command port
	statusUnlock = 1 << 4 // keyboard not inhibited (no "keylock")
	outPortReset = 1 << 0 // output port bit 0: clear resets the CPU
	outPortA20   = 1 << 1
	ctrSys       = 1 << 2 // configuration byte: system flag
	ctrXlate     = 1 << 6 // configuration byte: scancode translation
)

// Controller is an i8042 that answers just enough for Linux's i8042 driver to probe
// it quickly (self test, the controller configuration byte, the output port) and
// turns the reset command, or clearing the output port's reset bit, into a call of
// reset. There is no keyboard or mouse behind it: keyboard commands are acknowledged
// and nothing more, so guests should run with i8042.noaux i8042.nomux i8042.nopnp
// i8042.dumbkbd (the VMM adds them). It never raises an interrupt. Safe for concurrent
// use.
type Controller struct {
	reset func()

	mu      sync.Mutex
	ctr     uint8  // controller configuration byte
	outPort uint8  // output port
	pending uint8  // command waiting for its data byte, or 0
	status  uint8  // statusCmd as last written
	buf     []byte // bytes for the guest to read from the data port
}

// New returns a controller that calls reset when the guest resets the CPU. reset is
// called with the controller's lock held and must not call back into it.
func New(reset func()) *Controller {
	if reset == nil {
		reset = func() {}
	}
	return &Controller{reset: reset, ctr: ctrSys | ctrXlate, outPort: outPortReset | outPortA20}
}

// Read handles a guest read of port (DataPort or CommandPort).
func (c *Controller) Read(port uint16, data []byte) {
	if len(data) == 0 {
		return
	}
	clear(data)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch port {
	case CommandPort:
		s := statusSys | statusUnlock | c.status
		if len(c.buf) > 0 {
			s |= statusOBF
		}
		data[0] = s
	case DataPort:
		if len(c.buf) > 0 {
			data[0] = c.buf[0]
			c.buf = c.buf[1:]
		}
	}
}

// Write handles a guest write to port.
func (c *Controller) Write(port uint16, data []byte) {
	if len(data) == 0 {
		return
	}
	v := data[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	switch port {
	case CommandPort:
		c.status = statusCmd
		c.pending = 0
		switch v {
		case cmdReadCTR:
			c.replyLocked(c.ctr)
		case cmdWriteCTR, cmdWriteOutPort:
			c.pending = v
		case cmdSelfTest:
			c.replyLocked(selfTestOK)
		case cmdTestKbd, cmdTestAux:
			c.replyLocked(0) // interface test passed
		case cmdReadOutPort:
			c.replyLocked(c.outPort)
		case cmdResetCPU:
			c.reset()
		case cmdDisableAux, cmdEnableAux, cmdDisableKbd, cmdEnableKbd:
		}
	case DataPort:
		c.status = 0
		switch c.pending {
		case cmdWriteCTR:
			c.ctr = v
		case cmdWriteOutPort:
			c.outPort = v
			if v&outPortReset == 0 {
				c.reset()
			}
		default:
			c.replyLocked(kbdAck) // a keyboard command: acknowledge it
		}
		c.pending = 0
	}
}

// replyLocked queues a byte for the data port, keeping at most a few: the guest reads
// them one by one and a real controller holds one.
func (c *Controller) replyLocked(b byte) {
	if len(c.buf) >= 16 {
		return
	}
	c.buf = append(c.buf, b)
}
