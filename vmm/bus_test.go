package vmm

import (
	"testing"

	"github.com/hullvm/hull/devices/i8042"
	"github.com/hullvm/hull/devices/uart"
	"github.com/hullvm/hull/kvm"
)

func newTestBus() (*bus, *[]byte) {
	var exits []byte
	b := &bus{log: discard(), serial: uart.New(nil, nil), kbd: i8042.New(nil),
		debugExit: func(v byte) { exits = append(exits, v) }}
	return b, &exits
}

func TestBusPorts(t *testing.T) {
	tests := []struct {
		name string
		io   kvm.IO
		want []byte // what an IN reads
	}{
		{"absent COM2 reads all ones", kvm.IO{Port: 0x2f8 + 5, Size: 1, Count: 1}, []byte{0xff}},
		{"PCI config reads all ones", kvm.IO{Port: 0xcfc, Size: 4, Count: 1}, []byte{0xff, 0xff, 0xff, 0xff}},
		{"CMOS reads zero", kvm.IO{Port: cmosData, Size: 1, Count: 1}, []byte{0}},
		{"COM1 LSR", kvm.IO{Port: uart.COM1 + 5, Size: 1, Count: 1}, []byte{0x60}},
		{"string read of COM1 LSR", kvm.IO{Port: uart.COM1 + 5, Size: 1, Count: 3}, []byte{0x60, 0x60, 0x60}},
		{"i8042 status", kvm.IO{Port: i8042.CommandPort, Size: 1, Count: 1}, []byte{0x14}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newTestBus()
			tc.io.Data = make([]byte, tc.io.Size*tc.io.Count)
			for i := range tc.io.Data {
				tc.io.Data[i] = 0xaa
			}
			b.io(&tc.io)
			if string(tc.io.Data) != string(tc.want) {
				t.Fatalf("read %#x, want %#x", tc.io.Data, tc.want)
			}
		})
	}
}

func TestBusDebugExitAndString(t *testing.T) {
	b, exits := newTestBus()
	b.io(&kvm.IO{Port: DebugExitPort, Out: true, Size: 1, Count: 1, Data: []byte{7}})
	if string(*exits) != "\x07" {
		t.Fatalf("debug exits %v, want [7]", *exits)
	}
	var out []byte
	b.serial = uart.New(writerFunc(func(p []byte) { out = append(out, p...) }), nil)
	b.io(&kvm.IO{Port: uart.COM1, Out: true, Size: 1, Count: 3, Data: []byte("abc")}) // rep outsb
	if string(out) != "abc" {
		t.Fatalf("string output %q, want %q", out, "abc")
	}
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// TestBusNoAllocs: a guest probing absent hardware costs no allocation per exit.
func TestBusNoAllocs(t *testing.T) {
	b, _ := newTestBus()
	in := kvm.IO{Port: 0xcfc, Size: 4, Count: 1, Data: make([]byte, 4)}
	out := kvm.IO{Port: 0xcf8, Out: true, Size: 4, Count: 1, Data: make([]byte, 4)}
	mm := kvm.MMIO{Addr: 0xfed00000, Data: make([]byte, 4)}
	n := testing.AllocsPerRun(100, func() {
		b.io(&in)
		b.io(&out)
		b.mmio(&mm)
	})
	if n != 0 {
		t.Fatalf("%.1f allocations per round of unhandled accesses", n)
	}
}
