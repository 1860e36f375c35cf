package vsock_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/hullvm/hull/virtio/virtiotest"
	"github.com/hullvm/hull/virtio/vsock"
)

// BenchmarkHostToGuest streams bytes from a host program over CONNECT into 4 KiB guest
// rx buffers (the fake driver reposts each one as it reads it), as MB/s.
func BenchmarkHostToGuest(b *testing.B) {
	path := filepath.Join(b.TempDir(), "v.sock")
	dev, err := vsock.New(vsock.Config{CID: cid, Path: path}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	d := virtiotest.Start(b, dev, ^uint64(0))
	rx, tx := d.Queues[0], d.Queues[1]
	bufs := map[uint16][]virtiotest.Seg{}
	for range 128 {
		head, ws, err := rx.Add(nil, []uint32{vsock.HeaderSize, 4096})
		if err != nil {
			b.Fatal(err)
		}
		bufs[head] = ws
	}
	rx.Kick()
	host, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	fmt.Fprintf(host, "CONNECT 1024\n")
	u := rx.Wait(b, d.IRQ)
	req, _ := vsock.ParseHeader(rx.Read(bufs[u.ID], u.Len))
	if head, err := rx.AddSegs(bufs[u.ID]...); err != nil {
		b.Fatal(err)
	} else {
		bufs[head] = bufs[u.ID]
	}
	resp := pkt(vsock.OpResponse, 1024, req.SrcPort)
	resp.BufAlloc = ^uint32(0) // no credit updates needed below 4 GiB
	if _, _, err := tx.Add([][]byte{resp.Bytes()}, nil); err != nil {
		b.Fatal(err)
	}
	tx.Kick()
	const chunk = 64 << 10
	total := int64(b.N) * 4096
	b.SetBytes(4096)
	b.ResetTimer()
	go func() {
		buf := make([]byte, chunk)
		for left := total; left > 0; left -= chunk {
			host.Write(buf[:min(left, chunk)])
		}
	}()
	var got int64
	for got < total {
		u := rx.Wait(b, d.IRQ)
		got += int64(u.Len) - vsock.HeaderSize
		head, err := rx.AddSegs(bufs[u.ID]...)
		if err != nil {
			b.Fatal(err)
		}
		bufs[head] = bufs[u.ID]
		rx.Kick()
	}
}
