package uart

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// rig is a UART with its output and interrupt line recorded.
type rig struct {
	u     *UART
	out   bytes.Buffer
	line  bool
	rises int
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{}
	r.u = New(&r.out, func(high bool) {
		if high && !r.line {
			r.rises++
		}
		r.line = high
	})
	return r
}

func (r *rig) in(off uint8) uint8 {
	b := []byte{0xaa}
	r.u.Read(off, b)
	return b[0]
}

func (r *rig) outb(off, v uint8) { r.u.Write(off, []byte{v}) }

func TestRegisters(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *rig)
		off   uint8
		want  uint8
	}{
		{"LSR idle", nil, regLSR, lsrTHRE | lsrTEMT},
		{"IIR idle", nil, regIIR, iirNone},
		{"IIR FIFOs on", func(r *rig) { r.outb(regIIR, fcrEnable) }, regIIR, iirNone | iirFIFOsOn},
		{"scratch", func(r *rig) { r.outb(regSCR, 0x5a) }, regSCR, 0x5a},
		{"LCR", func(r *rig) { r.outb(regLCR, 0x03) }, regLCR, 0x03},
		{"DLL under DLAB", func(r *rig) { r.outb(regLCR, lcrDLAB); r.outb(regData, 0x0c) }, regData, 0x0c},
		{"DLM under DLAB", func(r *rig) { r.outb(regLCR, lcrDLAB); r.outb(regIER, 0x01) }, regIER, 0x01},
		{"IER after DLAB", func(r *rig) { r.outb(regLCR, lcrDLAB); r.outb(regIER, 0x01); r.outb(regLCR, 0) }, regIER, 0},
		{"IER masks high bits", func(r *rig) { r.outb(regIER, 0xff) }, regIER, 0x0f},
		{"MSR no loop", nil, regMSR, msrDCD | msrDSR | msrCTS},
		{"MSR loop (Linux autoconfig)", func(r *rig) { r.outb(regMCR, mcrLoop|mcrOUT2|mcrRTS) }, regMSR, msrCTS | msrDCD},
		{"loopback data", func(r *rig) { r.outb(regMCR, mcrLoop); r.outb(regData, 'x') }, regData, 'x'},
		{"LSR data ready", func(r *rig) { r.u.Receive([]byte("a")) }, regLSR, lsrTHRE | lsrTEMT | lsrDR},
		{"RBR", func(r *rig) { r.u.Receive([]byte("ab")) }, regData, 'a'},
		{"RBR empty", nil, regData, 0},
		{"IIR RDA", func(r *rig) { r.outb(regIER, ierRDA); r.u.Receive([]byte("a")) }, regIIR, iirRDA},
		{"IIR RDA before THRE", func(r *rig) { r.outb(regIER, ierRDA|ierTHRE); r.u.Receive([]byte("a")) }, regIIR, iirRDA},
		{"IIR THRE", func(r *rig) { r.outb(regIER, ierTHRE) }, regIIR, iirTHRE},
		{"IIR THRE cleared by read", func(r *rig) { r.outb(regIER, ierTHRE); r.in(regIIR) }, regIIR, iirNone},
		{"IIR THRE after write", func(r *rig) { r.outb(regIER, ierTHRE); r.in(regIIR); r.outb(regData, 'z') }, regIIR, iirTHRE},
		{"IIR RDA masked", func(r *rig) { r.u.Receive([]byte("a")) }, regIIR, iirNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			if tc.setup != nil {
				tc.setup(r)
			}
			if got := r.in(tc.off); got != tc.want {
				t.Fatalf("register %d = %#x, want %#x", tc.off, got, tc.want)
			}
		})
	}
}

func TestTransmit(t *testing.T) {
	r := newRig(t)
	for _, c := range []byte("hello\n") {
		r.outb(regData, c)
	}
	r.outb(regMCR, mcrLoop)
	r.outb(regData, 'L') // loopback: not transmitted
	if got := r.out.String(); got != "hello\n" {
		t.Fatalf("output %q, want %q", got, "hello\n")
	}
}

// TestInterruptLine follows the line through what Linux's 8250 driver does.
func TestInterruptLine(t *testing.T) {
	r := newRig(t)
	steps := []struct {
		do        func()
		line      bool
		rises     int
		whatFirst string
	}{
		{func() { r.outb(regIER, ierRDA) }, false, 0, "enable RX interrupt"},
		{func() { r.u.Receive([]byte("hi")) }, true, 1, "input arrives"},
		{func() { r.in(regData) }, true, 1, "read one of two"},
		{func() { r.in(regData) }, false, 1, "read the last"},
		{func() { r.outb(regIER, ierRDA|ierTHRE) }, true, 2, "enable THRE"},
		{func() { r.in(regIIR) }, false, 2, "IIR read acknowledges THRE"},
		{func() { r.outb(regData, 'x') }, true, 3, "transmit"},
		{func() { r.outb(regIER, ierRDA) }, false, 3, "disable THRE"},
		{func() { r.outb(regIER, 0); r.u.Receive([]byte("y")) }, false, 3, "input with interrupts off"},
		{func() { r.outb(regIER, ierRDA) }, true, 4, "enable RX with data waiting"},
	}
	for _, s := range steps {
		s.do()
		if r.line != s.line || r.rises != s.rises {
			t.Fatalf("after %q: line %v, %d rises; want %v, %d", s.whatFirst, r.line, r.rises, s.line, s.rises)
		}
	}
}

func TestReceiveCapsFIFO(t *testing.T) {
	r := newRig(t)
	if n := r.u.Receive(make([]byte, RxCap+10)); n != RxCap {
		t.Fatalf("Receive accepted %d bytes, want %d", n, RxCap)
	}
	if n := r.u.Receive([]byte("x")); n != 0 {
		t.Fatalf("Receive into a full FIFO accepted %d", n)
	}
}

func TestFeed(t *testing.T) {
	r := newRig(t)
	input := strings.Repeat("0123456789", RxCap/5) // twice the FIFO: Feed must wait for the guest
	done := make(chan error, 1)
	go func() { done <- r.u.Feed(context.Background(), strings.NewReader(input)) }()
	var got []byte
	for len(got) < len(input) {
		b := []byte{0}
		// Poll LSR like a guest driver; the race detector checks the locking.
		r.u.Read(regLSR, b)
		if b[0]&lsrDR != 0 {
			r.u.Read(regData, b)
			got = append(got, b[0])
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if string(got) != input {
		t.Fatalf("guest read %d bytes that differ from the input", len(got))
	}
}

func TestFeedCanceled(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.u.Feed(ctx, io.MultiReader(strings.NewReader(strings.Repeat("x", 2*RxCap))))
	if err != context.Canceled {
		t.Fatalf("Feed = %v, want context.Canceled", err)
	}
}

// FuzzGuest drives the registers with arbitrary guest accesses and host input: no
// panic, the FIFO stays within RxCap, and the line matches IIR.
func FuzzGuest(f *testing.F) {
	f.Add([]byte{0x13, 0x01, 0x03, 0x80, 0x10, 0x0c, 0x03, 0x03, 0x02, 0x07, 0x00, 'h'})
	f.Add([]byte{0x11, 0x03, 0x08, 0x02, 0x14, 0x10, 0x00, 'x', 0x80, 0x05})
	f.Fuzz(func(t *testing.T, ops []byte) {
		r := newRig(t)
		for i := 0; i+1 < len(ops); i += 2 {
			op, v := ops[i], ops[i+1]
			off := op & 7
			switch op >> 3 & 3 {
			case 0:
				r.in(off)
			case 1:
				r.outb(off, v)
			case 2:
				r.u.Receive(bytes.Repeat([]byte{v}, int(op>>5)*100))
			}
			if len(r.u.rx) > RxCap {
				t.Fatalf("FIFO holds %d bytes", len(r.u.rx))
			}
			if r.line != (r.u.iirLocked() != iirNone) {
				t.Fatalf("line %v disagrees with IIR %#x", r.line, r.u.iirLocked())
			}
		}
	})
}

func TestBatchable(t *testing.T) {
	u := New(nil, nil)
	var told []bool
	u.OnBatchable(func(b bool) { told = append(told, b) })
	if !u.Batchable() {
		t.Fatal("a reset UART (polled, no THRE interrupt) is not batchable")
	}
	steps := []struct {
		port, val uint8
		want      bool
	}{
		{regIER, ierTHRE, false}, // interrupt-driven transmit: each write raises THRE
		{regIER, ierRDA, true},
		{regLCR, lcrDLAB, false}, // the data port is the divisor latch
		{regLCR, 0x03, true},
		{regMCR, mcrLoop, false}, // transmitted bytes come back as received ones
		{regMCR, mcrDTR | mcrRTS | mcrOUT2, true},
		{regSCR, 0x55, true}, // no change, nothing told
	}
	for _, s := range steps {
		u.Write(s.port, []byte{s.val})
		if got := u.Batchable(); got != s.want {
			t.Errorf("after writing %#x to register %d: Batchable() = %v, want %v", s.val, s.port, got, s.want)
		}
	}
	want := []bool{false, true, false, true, false, true}
	if len(told) != len(want) {
		t.Fatalf("told %v, want %v", told, want)
	}
	for i := range want {
		if told[i] != want[i] {
			t.Fatalf("told %v, want %v", told, want)
		}
	}
}
