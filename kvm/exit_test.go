package kvm

import (
	"encoding/binary"
	"errors"
	"testing"
)

// fakeRun builds a kvm_run page with reason and the exit union u.
func fakeRun(reason Reason, u []byte) []byte {
	run := make([]byte, 4096+64)
	binary.LittleEndian.PutUint32(run[runExitReason:], uint32(reason))
	copy(run[runUnion:], u)
	return run
}

func ioUnion(dir, size byte, port uint16, count uint32, off uint64) []byte {
	u := []byte{dir, size, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(u[2:], port)
	binary.LittleEndian.PutUint32(u[4:], count)
	binary.LittleEndian.PutUint64(u[8:], off)
	return u
}

func mmioUnion(addr uint64, n uint32, write bool) []byte {
	u := make([]byte, 24)
	binary.LittleEndian.PutUint64(u, addr)
	binary.LittleEndian.PutUint32(u[16:], n)
	if write {
		u[20] = 1
	}
	return u
}

func TestParseExit(t *testing.T) {
	tests := []struct {
		name    string
		run     []byte
		ok      bool
		datalen int
	}{
		{"io out", fakeRun(ExitIO, ioUnion(1, 1, 0x3f8, 1, 4096)), true, 1},
		{"io string", fakeRun(ExitIO, ioUnion(0, 2, 0x1f0, 8, 4096)), true, 16},
		{"io size 3", fakeRun(ExitIO, ioUnion(1, 3, 0x3f8, 1, 4096)), false, 0},
		{"io count 0", fakeRun(ExitIO, ioUnion(1, 1, 0x3f8, 0, 4096)), false, 0},
		{"io past page", fakeRun(ExitIO, ioUnion(1, 4, 0x3f8, 17, 4096)), false, 0},
		{"io offset huge", fakeRun(ExitIO, ioUnion(1, 4, 0x3f8, 1, ^uint64(0)-1)), false, 0},
		{"io count overflow", fakeRun(ExitIO, ioUnion(1, 4, 0x3f8, ^uint32(0), 64)), false, 0},
		{"mmio write", fakeRun(ExitMMIO, mmioUnion(0xd0000050, 4, true)), true, 4},
		{"mmio 9 bytes", fakeRun(ExitMMIO, mmioUnion(0xd0000050, 9, false)), false, 0},
		{"mmio 0 bytes", fakeRun(ExitMMIO, mmioUnion(0xd0000050, 0, false)), false, 0},
		{"hlt", fakeRun(ExitHLT, nil), true, 0},
		{"short page", make([]byte, 100), false, 0},
		{"system event many data", fakeRun(ExitSystemEvent, []byte{2, 0, 0, 0, 0xff, 0xff, 0, 0}), true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseExit(tc.run)
			if tc.ok != (err == nil) {
				t.Fatalf("parseExit = %v, %v; want ok=%v", e, err, tc.ok)
			}
			if err != nil && len(tc.run) >= runUnion+runUnionSize && !errors.Is(err, ErrBadExit) {
				t.Fatalf("error %v is not ErrBadExit", err)
			}
			if err != nil {
				return
			}
			n := len(e.IO.Data) + len(e.MMIO.Data)
			if n != tc.datalen {
				t.Fatalf("data is %d bytes, want %d", n, tc.datalen)
			}
			if e.Reason == ExitSystemEvent && len(e.SystemEvent.Data) > maxExitData {
				t.Fatalf("system event data not capped: %d", len(e.SystemEvent.Data))
			}
			_ = e.String()
		})
	}
}

func FuzzParseExit(f *testing.F) {
	f.Add(fakeRun(ExitIO, ioUnion(1, 1, 0x3f8, 1, 4096)))
	f.Add(fakeRun(ExitMMIO, mmioUnion(0xd0000050, 4, true)))
	f.Add(fakeRun(ExitSystemEvent, []byte{2, 0, 0, 0, 3, 0, 0, 0}))
	f.Add(fakeRun(ExitInternalError, []byte{1, 0, 0, 0, 200, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, run []byte) {
		e, err := parseExit(run)
		if err != nil {
			return
		}
		for _, b := range [][]byte{e.IO.Data, e.MMIO.Data} {
			if len(b) > 0 && cap(b) != len(b) {
				t.Fatalf("data slice can grow past its bounds: len %d cap %d", len(b), cap(b))
			}
		}
		if len(e.SystemEvent.Data) > maxExitData || len(e.Internal.Data) > maxExitData {
			t.Fatal("exit data not capped")
		}
		_ = e.String()
	})
}
