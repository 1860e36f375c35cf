package vsock

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/hullvm/hull/virtio"
	"github.com/hullvm/hull/virtio/virtiotest"
)

// FuzzVsockHeader: any 44 bytes parse or fail on the length bound, and a parsed header
// encodes back to the same bytes.
func FuzzVsockHeader(f *testing.F) {
	f.Add(Header{SrcCID: 3, DstCID: 2, SrcPort: 1, DstPort: 2, Len: 5, Type: 1, Op: OpRW}.Bytes())
	f.Add(Header{Len: MaxPayload + 1}.Bytes())
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if len(b) >= HeaderSize && h.Len <= MaxPayload {
				t.Fatalf("ParseHeader refused a well-sized header: %v", err)
			}
			return
		}
		if !bytes.Equal(h.Bytes(), b[:HeaderSize]) {
			t.Fatal("header does not round-trip")
		}
	})
}

// FuzzVsockPacket feeds a stream of guest packets (each a header and, for RW, its
// payload) to the connection logic, with host programs on pipes, then delivers what it
// queued into guest rx buffers. It must not panic, hang or grow without bound.
func FuzzVsockPacket(f *testing.F) {
	seed := func(hs ...Header) []byte {
		var b []byte
		for _, h := range hs {
			b = append(b, h.Bytes()...)
			b = append(b, bytes.Repeat([]byte{'x'}, int(h.Len))...)
		}
		return b
	}
	p := func(op uint16, gp, hp, n uint32) Header {
		return Header{SrcCID: 3, DstCID: HostCID, SrcPort: gp, DstPort: hp, Type: TypeStream, Op: op, Len: n, BufAlloc: 4096}
	}
	f.Add(seed(p(OpRequest, 1, 10, 0), p(OpRW, 1, 10, 5), p(OpShutdown, 1, 10, 0), p(OpRst, 1, 10, 0)))
	f.Add(seed(p(OpRequest, 1, 11, 0), p(OpCreditRequest, 1, 11, 0), p(OpResponse, 1, 11, 0)))
	f.Add(seed(p(OpRW, 5, 6, 3), p(99, 5, 6, 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := virtiotest.NewGuest(1 << 20)
		rxd, err := virtiotest.NewDriver(g, 16)
		if err != nil {
			t.Fatal(err)
		}
		txd, err := virtiotest.NewDriver(g, 16)
		if err != nil {
			t.Fatal(err)
		}
		rx, err := virtio.NewQueue(g, rxd.Layout, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := virtio.NewQueue(g, txd.Layout, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		d := &Device{cfg: Config{CID: 3, Path: "/nonexistent"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		var hosts []net.Conn
		d.dial = func(ctx context.Context, port uint32) (net.Conn, error) {
			if port%2 == 1 {
				return nil, errors.New("refused")
			}
			a, b := net.Pipe()
			go io.Copy(io.Discard, b) // the host program reads everything
			hosts = append(hosts, b)
			return a, nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := newMux(ctx, d, rx, tx)
		defer func() {
			cancel()
			m.closeAll()
			m.wg.Wait() // the dials are done: hosts is ours
			for _, h := range hosts {
				h.Close()
			}
		}()
		for len(data) >= HeaderSize {
			h, err := ParseHeader(data)
			data = data[HeaderSize:]
			if err != nil {
				continue
			}
			var payload []byte
			if h.Op == OpRW {
				n := min(int(h.Len), len(data))
				payload = data[:n]
				data = data[n:]
			}
			m.packet(h, payload)
			for {
				select {
				case e := <-m.events:
					m.handle(e)
					continue
				default:
				}
				break
			}
			if m.controls > maxControl || len(m.conns) > maxConns {
				t.Fatalf("%d control packets, %d connections: over the bounds", m.controls, len(m.conns))
			}
		}
		for range 4 {
			rxd.Add(nil, []uint32{HeaderSize, 64})
		}
		if err := m.fillRx(); err != nil {
			t.Fatal(err)
		}
		for {
			u, ok := rxd.Used()
			if !ok {
				break
			}
			if u.Len < HeaderSize || u.Len > HeaderSize+64 {
				t.Fatalf("rx buffer filled with %d bytes", u.Len)
			}
		}
	})
}
