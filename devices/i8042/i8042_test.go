package i8042

import "testing"

type op struct {
	port  uint16
	write bool
	v     byte // written, or expected when read
}

func TestController(t *testing.T) {
	tests := []struct {
		name   string
		ops    []op
		resets int
	}{
		{"status idle", []op{{CommandPort, false, statusSys | statusUnlock}}, 0},
		{"self test", []op{{CommandPort, true, cmdSelfTest}, {CommandPort, false, statusSys | statusUnlock | statusCmd | statusOBF}, {DataPort, false, selfTestOK}, {CommandPort, false, statusSys | statusUnlock | statusCmd}}, 0},
		{"write then read CTR", []op{{CommandPort, true, cmdWriteCTR}, {DataPort, true, 0x61}, {CommandPort, true, cmdReadCTR}, {DataPort, false, 0x61}}, 0},
		{"keyboard command acked", []op{{DataPort, true, 0xff}, {DataPort, false, kbdAck}}, 0},
		{"reset command (reboot=k)", []op{{CommandPort, true, cmdResetCPU}}, 1},
		{"output port reset bit", []op{{CommandPort, true, cmdWriteOutPort}, {DataPort, true, 0xfe}}, 1},
		{"output port keeps running", []op{{CommandPort, true, cmdWriteOutPort}, {DataPort, true, 0x03}, {CommandPort, true, cmdReadOutPort}, {DataPort, false, 0x03}}, 0},
		{"empty data reads 0", []op{{DataPort, false, 0}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resets := 0
			c := New(func() { resets++ })
			for i, o := range tc.ops {
				b := []byte{0xee}
				if o.write {
					b[0] = o.v
					c.Write(o.port, b)
					continue
				}
				c.Read(o.port, b)
				if b[0] != o.v {
					t.Fatalf("op %d: read port %#x = %#x, want %#x", i, o.port, b[0], o.v)
				}
			}
			if resets != tc.resets {
				t.Fatalf("%d resets, want %d", resets, tc.resets)
			}
		})
	}
}

func TestRepliesCapped(t *testing.T) {
	c := New(nil)
	for range 1000 {
		c.Write(DataPort, []byte{0xf2})
	}
	if len(c.buf) > 16 {
		t.Fatalf("%d queued replies", len(c.buf))
	}
}

// FuzzController drives both ports with arbitrary guest accesses: no panic and a
// bounded reply queue.
func FuzzController(f *testing.F) {
	f.Add([]byte{0x64, 0xaa, 0x60, 0x00, 0x64, 0x60, 0x60, 0x47, 0x64, 0xfe})
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := New(nil)
		for i := 0; i+1 < len(ops); i += 2 {
			port := uint16(DataPort)
			if ops[i]&1 != 0 {
				port = CommandPort
			}
			b := []byte{ops[i+1]}
			if ops[i]&2 != 0 {
				c.Read(port, b)
			} else {
				c.Write(port, b)
			}
			if len(c.buf) > 16 {
				t.Fatalf("%d queued replies", len(c.buf))
			}
		}
	})
}
