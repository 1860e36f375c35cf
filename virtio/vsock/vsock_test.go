package vsock_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hullvm/hull/virtio/virtiotest"
	"github.com/hullvm/hull/virtio/vsock"
)

const cid = 42

// guest is a fake guest vsock driver on top of virtiotest.
type guest struct {
	t      *testing.T
	d      *virtiotest.Device
	rx, tx *virtiotest.Driver
	rxBufs map[uint16][]virtiotest.Seg
	path   string
}

func start(t *testing.T) *guest {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.sock")
	dev, err := vsock.New(vsock.Config{CID: cid, Path: path}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	d := virtiotest.Start(t, dev, ^uint64(0))
	g := &guest{t: t, d: d, rx: d.Queues[0], tx: d.Queues[1], rxBufs: map[uint16][]virtiotest.Seg{}, path: path}
	for range 8 {
		g.postRx()
	}
	g.rx.Kick()
	return g
}

// postRx posts one rx buffer as Linux 6.1 does: a header descriptor and a 4 KiB one.
func (g *guest) postRx() {
	g.t.Helper()
	head, ws, err := g.rx.Add(nil, []uint32{vsock.HeaderSize, 4096})
	if err != nil {
		g.t.Fatal(err)
	}
	g.rxBufs[head] = ws
}

func (g *guest) send(h vsock.Header, data []byte) {
	g.t.Helper()
	h.Len = uint32(len(data))
	out := [][]byte{h.Bytes()}
	if len(data) > 0 {
		out = append(out, data)
	}
	if _, _, err := g.tx.Add(out, nil); err != nil {
		g.t.Fatal(err)
	}
	g.tx.Kick()
	g.tx.Wait(g.t, g.d.IRQ)
}

// recv returns the next packet the device delivered and reposts the buffer.
func (g *guest) recv() (vsock.Header, []byte) {
	g.t.Helper()
	u := g.rx.Wait(g.t, g.d.IRQ)
	b := g.rx.Read(g.rxBufs[u.ID], u.Len)
	delete(g.rxBufs, u.ID)
	g.postRx()
	g.rx.Kick()
	h, err := vsock.ParseHeader(b)
	if err != nil {
		g.t.Fatal(err)
	}
	if int(h.Len) != len(b)-vsock.HeaderSize {
		g.t.Fatalf("header len %d, buffer holds %d payload bytes", h.Len, len(b)-vsock.HeaderSize)
	}
	return h, b[vsock.HeaderSize:]
}

// dial has the guest connect from port src to the host program listening on port dst
// (path_dst), sending req (a REQUEST, pkt(OpRequest, src, dst) unless given), and
// returns the host program's side of the connection.
func (g *guest) dial(req vsock.Header) net.Conn {
	g.t.Helper()
	ln, err := net.Listen("unix", fmt.Sprintf("%s_%d", g.path, req.DstPort))
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { ln.Close() })
	g.send(req, nil)
	srv, err := ln.Accept()
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { srv.Close() })
	return srv
}

func (g *guest) expect(op uint16) (vsock.Header, []byte) {
	g.t.Helper()
	h, data := g.recv()
	if h.Op != op {
		g.t.Fatalf("got op %d (%+v), want op %d", h.Op, h, op)
	}
	if h.SrcCID != vsock.HostCID || h.DstCID != cid || h.Type != vsock.TypeStream {
		g.t.Fatalf("packet addressed %d -> %d type %d", h.SrcCID, h.DstCID, h.Type)
	}
	return h, data
}

// pkt is a packet from guest port gp to host port hp.
func pkt(op uint16, gp, hp uint32) vsock.Header {
	return vsock.Header{SrcCID: cid, DstCID: vsock.HostCID, SrcPort: gp, DstPort: hp,
		Type: vsock.TypeStream, Op: op, BufAlloc: 64 << 10}
}

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHostConnect: a host program connects with CONNECT, the guest accepts, bytes flow
// both ways, and the guest's close reaches the host program.
func TestHostConnect(t *testing.T) {
	g := start(t)
	host, err := net.Dial("unix", g.path)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	host.SetDeadline(time.Now().Add(virtiotest.Timeout))
	fmt.Fprintf(host, "CONNECT 1024\n")
	req, _ := g.expect(vsock.OpRequest)
	if req.DstPort != 1024 {
		t.Fatalf("REQUEST to guest port %d, want 1024", req.DstPort)
	}
	hp := req.SrcPort
	g.send(pkt(vsock.OpResponse, 1024, hp), nil)
	br := bufio.NewReader(host)
	line, err := br.ReadString('\n')
	if err != nil || line != fmt.Sprintf("OK %d\n", hp) {
		t.Fatalf("handshake reply %q, %v; want OK %d", line, err, hp)
	}
	host.Write([]byte("ping"))
	h, data := g.expect(vsock.OpRW)
	if string(data) != "ping" || h.SrcPort != hp || h.DstPort != 1024 {
		t.Fatalf("guest got %q on %d->%d", data, h.SrcPort, h.DstPort)
	}
	g.send(pkt(vsock.OpRW, 1024, hp), []byte("pong"))
	if got := readN(t, br, 4); got != "pong" {
		t.Fatalf("host got %q", got)
	}
	// The guest got 4 bytes and its writes drained: expect a credit update.
	if h, _ := g.expect(vsock.OpCreditUpdate); h.FwdCnt != 4 || h.BufAlloc == 0 {
		t.Fatalf("credit update fwd_cnt %d buf_alloc %d, want 4 and non-zero", h.FwdCnt, h.BufAlloc)
	}
	shut := pkt(vsock.OpShutdown, 1024, hp)
	shut.Flags = vsock.ShutdownRcv | vsock.ShutdownSend
	g.send(shut, nil)
	g.expect(vsock.OpRst)
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Fatalf("host read %q, %v after the guest closed; want EOF", b, err)
	}
}

// TestHostConnectRefused: the guest resets a connection to a port nobody listens on.
func TestHostConnectRefused(t *testing.T) {
	g := start(t)
	host, err := net.Dial("unix", g.path)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	host.SetDeadline(time.Now().Add(virtiotest.Timeout))
	fmt.Fprintf(host, "CONNECT 7\n")
	req, _ := g.expect(vsock.OpRequest)
	g.send(pkt(vsock.OpRst, 7, req.SrcPort), nil)
	if b, err := io.ReadAll(host); err != nil || len(b) != 0 {
		t.Fatalf("host read %q, %v; want EOF without OK", b, err)
	}
}

// TestGuestConnect: the guest connects to host port 5000, reaching path_5000; the
// host program's close is a SHUTDOWN, and the guest's close a RST.
func TestGuestConnect(t *testing.T) {
	g := start(t)
	srv := g.dial(pkt(vsock.OpRequest, 3333, 5000))
	srv.SetDeadline(time.Now().Add(virtiotest.Timeout))
	if h, _ := g.expect(vsock.OpResponse); h.SrcPort != 5000 || h.DstPort != 3333 {
		t.Fatalf("RESPONSE %d->%d", h.SrcPort, h.DstPort)
	}
	g.send(pkt(vsock.OpRW, 3333, 5000), []byte("hello host"))
	if got := readN(t, srv, 10); got != "hello host" {
		t.Fatalf("host got %q", got)
	}
	g.expect(vsock.OpCreditUpdate)
	big := bytes.Repeat([]byte("0123456789"), 1000) // 10000 bytes: several rx buffers
	srv.Write(big)
	var got []byte
	for len(got) < len(big) {
		_, data := g.expect(vsock.OpRW)
		if len(data) > 4096 {
			t.Fatalf("payload of %d bytes in a 4096-byte buffer", len(data))
		}
		got = append(got, data...)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("guest got different bytes than the host sent")
	}
	srv.(*net.UnixConn).CloseWrite()
	if h, _ := g.expect(vsock.OpShutdown); h.Flags != vsock.ShutdownSend {
		t.Fatalf("shutdown flags %d, want SEND", h.Flags)
	}
	shut := pkt(vsock.OpShutdown, 3333, 5000)
	shut.Flags = vsock.ShutdownSend
	g.send(shut, nil)
	g.expect(vsock.OpRst)
}

func TestGuestConnectRefused(t *testing.T) {
	g := start(t)
	g.send(pkt(vsock.OpRequest, 3333, 6000), nil) // nobody listens on path_6000
	if h, _ := g.expect(vsock.OpRst); h.DstPort != 3333 || h.SrcPort != 6000 {
		t.Fatalf("RST %d->%d", h.SrcPort, h.DstPort)
	}
}

// TestCredit: the device never sends more than the guest's buf_alloc allows, asks for
// credit when it runs out, and resumes on a credit update.
func TestCredit(t *testing.T) {
	g := start(t)
	req := pkt(vsock.OpRequest, 4000, 5001)
	req.BufAlloc = 10
	srv := g.dial(req)
	g.expect(vsock.OpResponse)
	srv.Write([]byte("abcdefghijklmnopqrstuvwxyz"))
	var got []byte
	for len(got) < 10 {
		_, data := g.expect(vsock.OpRW)
		got = append(got, data...)
	}
	if len(got) != 10 {
		t.Fatalf("guest got %d bytes with 10 of credit", len(got))
	}
	g.expect(vsock.OpCreditRequest)
	upd := pkt(vsock.OpCreditUpdate, 4000, 5001)
	upd.BufAlloc, upd.FwdCnt = 10, 10
	g.send(upd, nil)
	for len(got) < 20 {
		_, data := g.expect(vsock.OpRW)
		got = append(got, data...)
	}
	if string(got) != "abcdefghijklmnopqrst" {
		t.Fatalf("guest got %q", got)
	}
}

// TestBadPackets: packets that fit no connection are answered with RST (or ignored,
// for RST itself), and the device goes on.
func TestBadPackets(t *testing.T) {
	wrongSrc := pkt(vsock.OpRequest, 1, 5000)
	wrongSrc.SrcCID = 7
	wrongDst := pkt(vsock.OpRequest, 1, 5000)
	wrongDst.DstCID = 99
	seq := pkt(vsock.OpRequest, 1, 5000)
	seq.Type = 2
	tests := []struct {
		name string
		h    vsock.Header
		data []byte
	}{
		{"foreign source CID", wrongSrc, nil},
		{"foreign destination CID", wrongDst, nil},
		{"seqpacket", seq, nil},
		{"data without a connection", pkt(vsock.OpRW, 1, 5000), []byte("x")},
		{"response without a connection", pkt(vsock.OpResponse, 1, 5000), nil},
		{"unknown op", pkt(99, 1, 5000), nil},
		{"invalid op", pkt(vsock.OpInvalid, 1, 5000), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := start(t)
			g.send(pkt(vsock.OpRst, 1, 5000), nil) // ignored: no reply
			g.send(tt.h, tt.data)
			if h, _ := g.expect(vsock.OpRst); h.DstPort != tt.h.SrcPort {
				t.Fatalf("RST to port %d, want %d", h.DstPort, tt.h.SrcPort)
			}
		})
	}
}

// TestMalformedTx: a tx chain shorter than a header, or whose len exceeds its payload,
// is dropped; the device goes on.
func TestMalformedTx(t *testing.T) {
	g := start(t)
	if _, _, err := g.tx.Add([][]byte{make([]byte, 20)}, nil); err != nil {
		t.Fatal(err)
	}
	g.tx.Kick()
	g.tx.Wait(t, g.d.IRQ)
	h := pkt(vsock.OpRW, 1, 2)
	h.Len = 1000
	if _, _, err := g.tx.Add([][]byte{h.Bytes(), []byte("short")}, nil); err != nil {
		t.Fatal(err)
	}
	g.tx.Kick()
	g.tx.Wait(t, g.d.IRQ)
	g.expect(vsock.OpRst)
	g.send(pkt(vsock.OpRequest, 3333, 6000), nil)
	g.expect(vsock.OpRst)
}

// TestReset: a driver reset closes every connection.
func TestReset(t *testing.T) {
	g := start(t)
	srv := g.dial(pkt(vsock.OpRequest, 4000, 5002))
	g.expect(vsock.OpResponse)
	g.d.SetReg(0x070, 0)
	srv.SetDeadline(time.Now().Add(virtiotest.Timeout))
	if b, err := io.ReadAll(srv); err != nil || len(b) != 0 {
		t.Fatalf("host read %q, %v after reset; want EOF", b, err)
	}
}

func TestParseConnect(t *testing.T) {
	tests := []struct {
		line string
		port uint32
		ok   bool
	}{
		{"CONNECT 1024", 1024, true},
		{"CONNECT 1024\r", 1024, true},
		{"CONNECT 4294967295", 4294967295, true},
		{"CONNECT 4294967296", 0, false},
		{"CONNECT -1", 0, false},
		{"CONNECT", 0, false},
		{"connect 1", 0, false},
		{"CONNECT 1 2", 0, false},
		{strings.Repeat("A", 100), 0, false},
	}
	for _, tt := range tests {
		port, err := vsock.ParseConnect(tt.line)
		if (err == nil) != tt.ok || port != tt.port {
			t.Errorf("ParseConnect(%q) = %d, %v", tt.line, port, err)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []vsock.Config{
		{CID: 2, Path: "/tmp/x"},
		{CID: 0xffffffff, Path: "/tmp/x"},
		{CID: 3},
		{CID: 3, Path: "/" + strings.Repeat("x", 120)},
	}
	for _, c := range tests {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", c)
		}
	}
}
