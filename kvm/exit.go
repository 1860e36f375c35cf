package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Reason is kvm_run.exit_reason (KVM_EXIT_*).
type Reason uint32

// Exit reasons, from <linux/kvm.h>.
const (
	ExitUnknown       Reason = 0
	ExitException     Reason = 1
	ExitIO            Reason = 2
	ExitHypercall     Reason = 3
	ExitDebug         Reason = 4
	ExitHLT           Reason = 5
	ExitMMIO          Reason = 6
	ExitIRQWindowOpen Reason = 7
	ExitShutdown      Reason = 8 // triple fault
	ExitFailEntry     Reason = 9
	ExitIntr          Reason = 10 // a signal or Kick interrupted KVM_RUN
	ExitSetTPR        Reason = 11
	ExitTPRAccess     Reason = 12
	ExitNMI           Reason = 16
	ExitInternalError Reason = 17
	ExitSystemEvent   Reason = 24
	ExitIOAPICEOI     Reason = 26
	ExitX86RDMSR      Reason = 29
	ExitX86WRMSR      Reason = 30
	ExitX86BusLock    Reason = 33
	ExitNotify        Reason = 37
)

var reasonNames = map[Reason]string{
	ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO", ExitHypercall: "HYPERCALL",
	ExitDebug: "DEBUG", ExitHLT: "HLT", ExitMMIO: "MMIO", ExitIRQWindowOpen: "IRQ_WINDOW_OPEN",
	ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY", ExitIntr: "INTR", ExitSetTPR: "SET_TPR",
	ExitTPRAccess: "TPR_ACCESS", ExitNMI: "NMI", ExitInternalError: "INTERNAL_ERROR",
	ExitSystemEvent: "SYSTEM_EVENT", ExitIOAPICEOI: "IOAPIC_EOI", ExitX86RDMSR: "X86_RDMSR",
	ExitX86WRMSR: "X86_WRMSR", ExitX86BusLock: "X86_BUS_LOCK", ExitNotify: "NOTIFY",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return "KVM_EXIT_" + s
	}
	return "KVM_EXIT(" + strconv.FormatUint(uint64(r), 10) + ")"
}

// System event types (kvm_run.system_event.type).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
)

// Exit is one parsed vCPU exit. Only the field for Reason is set.
type Exit struct {
	Reason      Reason
	IO          IO            // ExitIO
	MMIO        MMIO          // ExitMMIO
	SystemEvent SystemEvent   // ExitSystemEvent
	Internal    InternalError // ExitInternalError
	FailEntry   FailEntry     // ExitFailEntry
	Hardware    uint64        // ExitUnknown: hardware_exit_reason
}

// IO is a port I/O exit. Data holds Size*Count bytes in the kvm_run page: an OUT's
// data, or where an IN's result goes (string I/O has Count > 1).
type IO struct {
	Port  uint16
	Out   bool
	Size  int // 1, 2 or 4
	Count int
	Data  []byte
}

// MMIO is an MMIO exit: a guest access to an address no memory slot covers. Data is the
// written bytes, or where a read's result goes (at most 8 bytes).
type MMIO struct {
	Addr  uint64
	Write bool
	Data  []byte
}

// SystemEvent is a KVM_EXIT_SYSTEM_EVENT: the guest asked for a shutdown, reset or
// crash (through PSCI or similar; on x86 mostly a triple fault policy or Hyper-V).
type SystemEvent struct {
	Type uint32
	Data []uint64
}

// InternalError is a KVM_EXIT_INTERNAL_ERROR: KVM could not emulate something.
type InternalError struct {
	Suberror uint32 // 1 emulation failure, 2 simultaneous exceptions, 3 delivery event...
	Data     []uint64
}

// FailEntry is a KVM_EXIT_FAIL_ENTRY: the hardware refused to enter the guest.
type FailEntry struct {
	Reason uint64 // hardware_entry_failure_reason
	CPU    uint32
}

func (e Exit) String() string {
	switch e.Reason {
	case ExitIO:
		dir := "in"
		if e.IO.Out {
			dir = "out"
		}
		return fmt.Sprintf("%v %s port %#x size %d count %d", e.Reason, dir, e.IO.Port, e.IO.Size, e.IO.Count)
	case ExitMMIO:
		dir := "read"
		if e.MMIO.Write {
			dir = "write"
		}
		return fmt.Sprintf("%v %s %#x len %d", e.Reason, dir, e.MMIO.Addr, len(e.MMIO.Data))
	case ExitSystemEvent:
		return fmt.Sprintf("%v type %d data %#x", e.Reason, e.SystemEvent.Type, e.SystemEvent.Data)
	case ExitInternalError:
		return fmt.Sprintf("%v suberror %d data %#x", e.Reason, e.Internal.Suberror, e.Internal.Data)
	case ExitFailEntry:
		return fmt.Sprintf("%v hardware reason %#x cpu %d", e.Reason, e.FailEntry.Reason, e.FailEntry.CPU)
	case ExitUnknown:
		return fmt.Sprintf("%v hardware reason %#x", e.Reason, e.Hardware)
	}
	return e.Reason.String()
}

// Layout of struct kvm_run (include/uapi/linux/kvm.h).
const (
	runExitReason = 8
	runUnion      = 32  // the exit union
	runUnionSize  = 256 // its size
	runSize       = 2352
	maxExitData   = 16 // data[] entries in internal and system_event
)

// ErrBadExit is returned for a kvm_run whose exit fields point outside the page.
var ErrBadExit = errors.New("malformed kvm_run exit")

// parseExit reads the exit out of the kvm_run page run, checking every offset and
// length against the page.
func parseExit(run []byte) (Exit, error) {
	if len(run) < runUnion+runUnionSize {
		return Exit{}, fmt.Errorf("%w: kvm_run is %d bytes", ErrBadExit, len(run))
	}
	le := binary.LittleEndian
	u := run[runUnion : runUnion+runUnionSize]
	e := Exit{Reason: Reason(le.Uint32(run[runExitReason:]))}
	switch e.Reason {
	case ExitIO:
		// struct { __u8 direction, size; __u16 port; __u32 count; __u64 data_offset; }
		size, count := int(u[1]), int(le.Uint32(u[4:]))
		off := le.Uint64(u[8:])
		if size != 1 && size != 2 && size != 4 {
			return e, fmt.Errorf("%w: port I/O of size %d", ErrBadExit, size)
		}
		n := uint64(size) * uint64(count)
		if count == 0 || off > uint64(len(run)) || n > uint64(len(run))-off {
			return e, fmt.Errorf("%w: port I/O data %d×%d bytes at offset %d of %d", ErrBadExit, count, size, off, len(run))
		}
		e.IO = IO{Port: le.Uint16(u[2:]), Out: u[0] == 1, Size: size, Count: count, Data: run[off : off+n : off+n]}
	case ExitMMIO:
		// struct { __u64 phys_addr; __u8 data[8]; __u32 len; __u8 is_write; }
		n := le.Uint32(u[16:])
		if n == 0 || n > 8 {
			return e, fmt.Errorf("%w: MMIO access of %d bytes", ErrBadExit, n)
		}
		e.MMIO = MMIO{Addr: le.Uint64(u[0:]), Write: u[20] != 0, Data: u[8 : 8+n : 8+n]}
	case ExitSystemEvent:
		// struct { __u32 type; __u32 ndata; __u64 data[16]; }
		e.SystemEvent = SystemEvent{Type: le.Uint32(u[0:]), Data: words(u[8:], le.Uint32(u[4:]))}
	case ExitInternalError:
		// struct { __u32 suberror; __u32 ndata; __u64 data[16]; }
		e.Internal = InternalError{Suberror: le.Uint32(u[0:]), Data: words(u[8:], le.Uint32(u[4:]))}
	case ExitFailEntry:
		// struct { __u64 hardware_entry_failure_reason; __u32 cpu; }
		e.FailEntry = FailEntry{Reason: le.Uint64(u[0:]), CPU: le.Uint32(u[8:])}
	case ExitUnknown:
		e.Hardware = le.Uint64(u[0:])
	}
	return e, nil
}

// words decodes up to n (capped at maxExitData) little-endian uint64s from b.
func words(b []byte, n uint32) []uint64 {
	if n > maxExitData {
		n = maxExitData
	}
	if int(n)*8 > len(b) {
		n = uint32(len(b) / 8)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return out
}
