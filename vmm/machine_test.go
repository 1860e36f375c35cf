package vmm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/kvm"
)

// pvhELF wraps 32-bit code in the smallest ELF32 a PVH loader takes: one PT_LOAD at
// 1 MiB holding the whole file, and a PT_NOTE with XEN_ELFNOTE_PHYS32_ENTRY pointing at
// the code. The code runs in flat 32-bit protected mode with paging off.
func pvhELF(code []byte) []byte {
	const (
		load    = 0x100000
		hdr     = 52
		phent   = 32
		noteOff = hdr + 2*phent
		noteLen = 12 + 4 + 4
		codeOff = noteOff + noteLen
	)
	le := binary.LittleEndian
	b := make([]byte, codeOff+len(code))
	copy(b, "\x7fELF\x01\x01\x01")
	le.PutUint16(b[16:], 2) // ET_EXEC
	le.PutUint16(b[18:], 3) // EM_386
	le.PutUint32(b[20:], 1)
	le.PutUint32(b[24:], load+codeOff)
	le.PutUint32(b[28:], hdr)
	le.PutUint16(b[40:], hdr)
	le.PutUint16(b[42:], phent)
	le.PutUint16(b[44:], 2)
	ph := func(i int, typ, off, addr, size, align uint32) {
		p := b[hdr+i*phent:]
		le.PutUint32(p[0:], typ)
		le.PutUint32(p[4:], off)
		le.PutUint32(p[8:], addr)
		le.PutUint32(p[12:], addr)
		le.PutUint32(p[16:], size)
		le.PutUint32(p[20:], size)
		le.PutUint32(p[24:], 5) // R+X
		le.PutUint32(p[28:], align)
	}
	ph(0, 1, 0, load, uint32(len(b)), 0x1000)
	ph(1, 4, noteOff, load+noteOff, noteLen, 4)
	n := b[noteOff:]
	le.PutUint32(n[0:], 4)  // namesz
	le.PutUint32(n[4:], 4)  // descsz
	le.PutUint32(n[8:], 18) // XEN_ELFNOTE_PHYS32_ENTRY
	copy(n[12:], "Xen\x00")
	le.PutUint32(n[16:], load+codeOff)
	copy(b[codeOff:], code)
	return b
}

// Hand-assembled 32-bit guests.
var (
	// printGuest writes "hello, hull\n" to COM1, then writes 0x2a to the exit port.
	printGuest = cat(
		[]byte{0xbe}, le32(0x100000+116+20+29), // mov esi, msg (the code below is 29 bytes)
		[]byte{0x66, 0xba, 0xf8, 0x03},             // mov dx, 0x3f8
		[]byte{0xac},                               // next: lodsb
		[]byte{0x84, 0xc0},                         // test al, al
		[]byte{0x74, 0x03},                         // jz done
		[]byte{0xee},                               // out dx, al
		[]byte{0xeb, 0xf8},                         // jmp next
		[]byte{0xb0, 0x2a},                         // done: mov al, 0x2a
		[]byte{0xe6, 0xf4},                         // out 0xf4, al
		[]byte{0xeb, 0xfe},                         // jmp $
		[]byte{0x90, 0x90, 0x90, 0x90, 0x90, 0x90}, // pad the code to 29 bytes
		[]byte("hello, hull\n\x00"),
	)
	// echoGuest copies COM1 input to COM1 output up to a newline, then exits with 0.
	echoGuest = cat(
		[]byte{0x66, 0xba, 0xfd, 0x03}, // start: mov dx, 0x3fd (LSR)
		[]byte{0xec},                   // wait: in al, dx
		[]byte{0xa8, 0x01},             // test al, 1 (data ready)
		[]byte{0x74, 0xfb},             // jz wait
		[]byte{0x66, 0xba, 0xf8, 0x03}, // mov dx, 0x3f8
		[]byte{0xec},                   // in al, dx
		[]byte{0xee},                   // out dx, al
		[]byte{0x3c, 0x0a},             // cmp al, '\n'
		[]byte{0x75, 0xed},             // jne start
		[]byte{0xb0, 0x00},             // mov al, 0
		[]byte{0xe6, 0xf4},             // out 0xf4, al
		[]byte{0xeb, 0xfe},             // jmp $
	)
	// modeGuest writes 'a', turns on the THRE interrupt (interrupt-driven output, as a
	// tty driver does), writes 'b', and exits with 0.
	modeGuest = []byte{
		0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
		0xb0, 'a', 0xee, // mov al, 'a'; out dx, al
		0x66, 0xba, 0xf9, 0x03, // mov dx, 0x3f9 (IER)
		0xb0, 0x02, 0xee, // mov al, THRE; out dx, al
		0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
		0xb0, 'b', 0xee, // mov al, 'b'; out dx, al
		0xb0, 0x00, 0xe6, 0xf4, // mov al, 0; out 0xf4, al
		0xeb, 0xfe, // jmp $
	}
	// resetGuest pulses the CPU reset line through the i8042, as Linux's reboot=k.
	resetGuest = []byte{0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe} // mov al, 0xfe; out 0x64, al; jmp $
	// faultGuest raises #UD with an empty IDT: #UD, #DF, then a triple fault.
	faultGuest = []byte{0x0f, 0x0b} // ud2
	// spinGuest never ends.
	spinGuest = []byte{0xeb, 0xfe} // jmp $
	// mmioGuest reads and writes an MMIO address no device claims, then exits with
	// the value read (which must be 0).
	mmioGuest = []byte{
		0xa1, 0x00, 0x00, 0x00, 0xe0, // mov eax, [0xe0000000]
		0xa3, 0x00, 0x00, 0x00, 0xe0, // mov [0xe0000000], eax
		0xe6, 0xf4, // out 0xf4, al
		0xeb, 0xfe,
	}
)

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// SyncBuffer is a Console the VM's threads and the test share (exported for the
// package's external tests).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeGuest(t *testing.T, code []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "guest.elf")
	if err := os.WriteFile(p, pvhELF(code), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrintGuestCodeSize(t *testing.T) {
	// printGuest's mov esi points 29 bytes past the code start: keep it honest.
	if i := bytes.Index(printGuest, []byte("hello")); i != 29 {
		t.Fatalf("message at offset %d of printGuest, want 29", i)
	}
}

func TestMachineRun(t *testing.T) {
	tests := []struct {
		name    string
		code    []byte
		cpus    int
		mib     int // guest memory, 32 MiB when zero
		in      string
		cancel  bool // cancel the context once the guest runs
		want    Exit
		wantErr error
		out     string
	}{
		{name: "print and debug exit", code: printGuest, want: Exit{Reason: DebugExit, Code: 0x2a<<1 | 1, Value: 0x2a}, out: "hello, hull\n"},
		{name: "memory above 4 GiB", code: printGuest, mib: 4096 + 64, want: Exit{Reason: DebugExit, Code: 0x2a<<1 | 1, Value: 0x2a}, out: "hello, hull\n"},
		{name: "print on 4 vCPUs", code: printGuest, cpus: 4, want: Exit{Reason: DebugExit, Code: 0x2a<<1 | 1, Value: 0x2a}, out: "hello, hull\n"},
		{name: "console input echoed", code: echoGuest, in: "ping\n", want: Exit{Reason: DebugExit, Code: 1}, out: "ping\n"},
		{name: "i8042 reset", code: resetGuest, want: Exit{Reason: Reset}},
		{name: "unclaimed MMIO reads zero", code: mmioGuest, want: Exit{Reason: DebugExit, Code: 1}},
		{name: "triple fault", code: faultGuest, wantErr: ErrTripleFault},
		{name: "canceled", code: spinGuest, cpus: 2, cancel: true, want: Exit{Reason: Canceled, Code: 130}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testenv.RequireKVM(t)
			var out SyncBuffer
			cfg := Config{Kernel: writeGuest(t, tc.code), CPUs: tc.cpus, MemoryMiB: cmp.Or(tc.mib, 32), Console: &out}
			if tc.in != "" {
				cfg.ConsoleIn = strings.NewReader(tc.in)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			m, err := New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := m.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			runCtx := ctx
			if tc.cancel {
				var stop context.CancelFunc
				runCtx, stop = context.WithCancel(ctx)
				time.AfterFunc(50*time.Millisecond, stop)
			}
			got, err := m.Run(runCtx)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Run = %+v, %v; want error %v (console %q)", got, err, tc.wantErr, out.String())
			}
			if err != nil {
				var ve *VCPUError
				if !errors.As(err, &ve) || ve.Regs == "" {
					t.Fatalf("error %v carries no register dump", err)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("Run = %+v, want %+v (console %q)", got, tc.want, out.String())
			}
			if out.String() != tc.out {
				t.Fatalf("console %q, want %q", out.String(), tc.out)
			}
			if s := m.Stats(); s.Serial+s.Batched < uint64(len(tc.out)) || s.Exits < s.Serial+s.I8042+s.OtherPorts+s.Virtio+s.OtherMMIO {
				t.Fatalf("stats %+v: fewer exits than the guest made", s)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	testenv.RequireKVM(t)
	m, err := New(context.Background(), Config{Kernel: writeGuest(t, resetGuest), MemoryMiB: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestNewErrors(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a kernel at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	guest := writeGuest(t, resetGuest)
	tests := []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"invalid config", Config{}, "no kernel"},
		{"missing kernel", Config{Kernel: filepath.Join(dir, "nope")}, "open kernel"},
		{"not a kernel", Config{Kernel: junk}, "load"},
		{"missing initrd", Config{Kernel: guest, Initrd: filepath.Join(dir, "nope")}, "open initrd"},
		{"missing disk", Config{Kernel: guest, Disks: []Disk{{Path: filepath.Join(dir, "nope")}}}, "attach disk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.MemoryMiB = 16
			m, err := New(context.Background(), tc.cfg)
			if err == nil {
				m.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("New: %v; want it to mention %q", err, tc.msg)
			}
		})
	}
}

// TestDevices boots the reset guest with a disk and the rng attached: the virtio
// windows, ioeventfds and irqfds are set up and torn down with the machine.
func TestDevices(t *testing.T) {
	testenv.RequireKVM(t)
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	uds := filepath.Join(t.TempDir(), "v.sock")
	cfg := Config{Kernel: writeGuest(t, resetGuest), MemoryMiB: 16, RNG: true,
		Disks: []Disk{{Path: disk, ID: "a"}, {Path: disk, ReadOnly: true, ID: "b"}},
		Vsock: &Vsock{CID: 3, UDS: uds}}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want := "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd " +
		"virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 virtio_mmio.device=4K@0xd0002000:7 " +
		"virtio_mmio.device=4K@0xd0003000:8"
	if got := m.cmdline(); got != want {
		t.Fatalf("cmdline %q, want %q", got, want)
	}
	// The guest sees a virtio-mmio device in each window: magic "virt", version 2.
	for i, typ := range []uint32{2, 2, 4, 19} {
		for _, r := range []struct{ off, want uint32 }{{0, 0x74726976}, {4, 2}, {8, typ}} {
			b := make([]byte, 4)
			m.bus.mmio(&kvm.MMIO{Addr: uint64(VirtioBase) + uint64(i)*VirtioSize + uint64(r.off), Data: b})
			if got := binary.LittleEndian.Uint32(b); got != r.want {
				t.Fatalf("device %d register %#x = %#x, want %#x", i, r.off, got, r.want)
			}
		}
	}
	if _, err := os.Stat(uds); err != nil {
		t.Fatalf("vsock socket: %v", err)
	}
	if e, err := m.Run(context.Background()); err != nil || e.Reason != Reset {
		t.Fatalf("Run = %+v, %v", e, err)
	}
}

func TestNetDevice(t *testing.T) {
	testenv.RequireKVM(t)
	testenv.RequireTun(t)
	const tap = "hulltest0"
	cfg := Config{Kernel: writeGuest(t, resetGuest), MemoryMiB: 16, Nets: []Net{{Tap: tap}}}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/class/net/" + tap); err != nil {
		m.Close()
		t.Fatalf("tap not created: %v", err)
	}
	// Window 0 holds a virtio-net device (type 1) whose config space starts with the MAC.
	regs := []struct{ off, want uint32 }{{0, 0x74726976}, {4, 2}, {8, 1}, {0x100, 0x6c756802}}
	for _, r := range regs {
		b := make([]byte, 4)
		m.bus.mmio(&kvm.MMIO{Addr: uint64(VirtioBase) + uint64(r.off), Data: b})
		if got := binary.LittleEndian.Uint32(b); got != r.want {
			t.Errorf("register %#x = %#x, want %#x", r.off, got, r.want)
		}
	}
	if !strings.HasSuffix(m.cmdline(), "virtio_mmio.device=4K@0xd0000000:5") {
		t.Errorf("cmdline %q does not declare the device", m.cmdline())
	}
	m.Close()
	if _, err := os.Stat("/sys/class/net/" + tap); err == nil {
		t.Fatal("tap left behind after Close")
	}
}

// TestConsoleBatching: a guest that writes the UART without enabling its THRE
// interrupt has its bytes batched by KVM (no exit each), yet they come out whole and in
// order with the accesses that exit; once it enables the interrupt, every write exits
// again (a batched one would never raise it).
func TestConsoleBatching(t *testing.T) {
	testenv.RequireKVM(t)
	tests := []struct {
		name          string
		code          []byte
		out           string
		batched, exit uint64 // batched bytes, serial exits
	}{
		{name: "polled", code: printGuest, out: "hello, hull\n", batched: 12, exit: 0},
		{name: "interrupt-driven later", code: modeGuest, out: "ab", batched: 1, exit: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out SyncBuffer
			m, err := New(context.Background(), Config{Kernel: writeGuest(t, tc.code), MemoryMiB: 32, Console: &out})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.bus.batch == nil {
				if c, _ := m.sys.Check(kvm.CapCoalescedPIO); c > 0 {
					t.Fatal("KVM can batch port writes, yet the console is not batched")
				}
				t.Skip("this host's KVM cannot batch port writes (no KVM_CAP_COALESCED_PIO)")
			}
			if _, err := m.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			s := m.Stats()
			if out.String() != tc.out || s.Batched != tc.batched || s.Serial != tc.exit {
				t.Errorf("console %q, %d batched, %d serial exits; want %q, %d, %d", out.String(), s.Batched, s.Serial, tc.out, tc.batched, tc.exit)
			}
		})
	}
}

// TestConsoleBatchingNotForLinux: Linux leaves the polled mode at its 8250 probe, and
// ending the batching then costs milliseconds, so a Linux kernel is never batched.
func TestConsoleBatchingNotForLinux(t *testing.T) {
	testenv.RequireKVM(t)
	kernel := cache.Dir(cmp.Or(os.Getenv("HULL_CACHE"), cache.DefaultDir)).BootKernel()
	testenv.RequireFile(t, kernel, "the guest kernel (scripts/setup builds it)")
	m, err := New(context.Background(), Config{Kernel: kernel, MemoryMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.bus.batch != nil {
		t.Error("Linux's console is batched")
	}
}
