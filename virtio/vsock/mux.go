package vsock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hullvm/hull/virtio"
)

// key names a connection: the host-side port and the guest-side port.
type key struct{ local, peer uint32 }

type state int

const (
	connecting  state = iota // host-initiated, REQUEST sent, waiting for RESPONSE
	dialing                  // guest-initiated, dialing the host program
	established              // streaming
)

// conn is one stream. The mux goroutine owns every field but the writer queue; a
// reader goroutine moves host bytes in (one grant at a time) and a writer goroutine
// moves guest bytes out.
type conn struct {
	k        key
	sock     net.Conn
	state    state
	hostInit bool
	closed   bool
	done     chan struct{} // closed when the connection is dropped

	// Credit (§5.10.6.3): what the guest told us, and what we sent it.
	peerBufAlloc, peerFwdCnt uint32
	txCnt                    uint32 // payload bytes queued for the guest
	fwdCnt, sentFwdCnt       uint32 // guest bytes written to the host program; last reported
	inflight                 uint32 // guest bytes not yet written to the host program
	creditAsked              bool

	grant   chan uint32 // lets the reader read up to this many bytes
	reading bool        // a grant is outstanding
	queued  int         // bytes read from the host waiting for guest rx buffers
	eof     bool        // the host program will send no more (or the guest takes no more)
	guest   uint32      // shutdown flags the guest sent

	mu      sync.Mutex // guards out
	out     []chunk    // for the writer
	outWake chan struct{}
}

// chunk is one thing for the writer to do.
type chunk struct {
	b          []byte
	guest      bool // guest payload: counted in fwd_cnt
	closeWrite bool // the guest shut down sending: half-close the socket
}

// credit is how much more payload the guest can take now.
func (c *conn) credit() uint32 {
	used := c.txCnt - c.peerFwdCnt
	if used >= c.peerBufAlloc {
		return 0
	}
	return c.peerBufAlloc - used
}

func (c *conn) send(ch chunk) {
	c.mu.Lock()
	c.out = append(c.out, ch)
	c.mu.Unlock()
	select {
	case c.outWake <- struct{}{}:
	default:
	}
}

type evKind int

const (
	evAccept evKind = iota // a host program sent CONNECT
	evDialed               // a guest-initiated dial finished
	evRead                 // a reader read host bytes
	evWrote                // a writer wrote guest bytes
)

type event struct {
	kind evKind
	c    *conn
	sock net.Conn
	port uint32
	data []byte
	n    uint32
	err  error
}

// packet is one packet waiting for a guest rx buffer.
type packet struct {
	h    Header
	data []byte
	c    *conn // its credit fields are filled in on delivery
}

// mux is one run of the device: its connections and the packets for the guest. Only
// the loop goroutine touches it, except post and the conns' writer queues.
type mux struct {
	ctx    context.Context
	d      *Device
	rx, tx *virtio.Queue
	events chan event
	wg     sync.WaitGroup

	conns    map[key]*conn
	rxq      []packet
	controls int
	nextPort uint32
}

func newMux(ctx context.Context, d *Device, rx, tx *virtio.Queue) *mux {
	return &mux{ctx: ctx, d: d, rx: rx, tx: tx, events: make(chan event, 64),
		conns: map[key]*conn{}, nextPort: firstHostPort}
}

func (m *mux) loop() error {
	for {
		if err := m.drainTx(); err != nil {
			return err
		}
		if err := m.fillRx(); err != nil {
			return err
		}
		m.rx.Signal()
		m.tx.Signal()
		select {
		case <-m.ctx.Done():
			return nil
		case <-m.tx.Kicks():
		case <-m.rx.Kicks():
		case e := <-m.events:
			m.handle(e)
		}
	}
}

// post hands e to the loop; false if the device stopped.
func (m *mux) post(e event) bool {
	select {
	case m.events <- e:
		return true
	case <-m.ctx.Done():
		return false
	}
}

// drainTx handles every packet the guest sent (§5.10.6.1). The tx buffers are returned
// with nothing written.
func (m *mux) drainTx() error {
	for {
		c, err := m.tx.Pop()
		if errors.Is(err, virtio.ErrBadChain) {
			continue
		}
		if err != nil {
			return err
		}
		if c == nil {
			return nil
		}
		m.fromGuest(c)
		if err := m.tx.Push(c.Head, 0); err != nil {
			return err
		}
	}
}

func (m *mux) fromGuest(ch *virtio.Chain) {
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(ch, hb[:]); err != nil {
		m.d.log.Debug("short vsock packet", "err", err)
		return
	}
	h, err := ParseHeader(hb[:])
	if err != nil || uint64(h.Len) > ch.Readable() {
		m.d.log.Debug("bad vsock packet", "err", err, "len", h.Len)
		if h.Op != OpRst {
			m.reply(h, OpRst)
		}
		return
	}
	var data []byte
	if h.Op == OpRW && h.Len > 0 {
		data = make([]byte, h.Len)
		io.ReadFull(ch, data)
	}
	m.packet(h, data)
}

// packet applies one packet from the guest to the connections (§5.10.6).
func (m *mux) packet(h Header, data []byte) {
	if h.SrcCID != m.d.cfg.CID || h.DstCID != HostCID || h.Type != TypeStream {
		if h.Op != OpRst {
			m.reply(h, OpRst)
		}
		return
	}
	k := key{local: h.DstPort, peer: h.SrcPort}
	c := m.conns[k]
	if c == nil {
		switch h.Op {
		case OpRequest:
			m.guestConnect(k, h)
		case OpRst:
		default:
			m.reply(h, OpRst)
		}
		return
	}
	c.peerBufAlloc, c.peerFwdCnt = h.BufAlloc, h.FwdCnt
	switch h.Op {
	case OpResponse:
		if c.state != connecting {
			m.reset(c)
			return
		}
		c.state = established
		c.send(chunk{b: []byte("OK " + strconv.FormatUint(uint64(c.k.local), 10) + "\n")})
	case OpRW:
		if c.state != established || c.guest&ShutdownSend != 0 {
			m.reset(c)
			return
		}
		if uint64(c.inflight)+uint64(len(data)) > bufAlloc {
			m.d.log.Debug("guest overran vsock credit", "port", k.local)
			m.reset(c)
			return
		}
		if len(data) > 0 {
			c.inflight += uint32(len(data))
			c.send(chunk{b: data, guest: true})
		}
	case OpCreditUpdate:
	case OpCreditRequest:
		m.control(c, OpCreditUpdate, 0)
	case OpShutdown:
		f := h.Flags & (ShutdownRcv | ShutdownSend)
		if f&ShutdownSend != 0 && c.guest&ShutdownSend == 0 {
			c.send(chunk{closeWrite: true})
		}
		if f&ShutdownRcv != 0 {
			c.eof = true
		}
		c.guest |= f
		if m.finish(c) {
			return
		}
	case OpRst:
		m.drop(c)
		return
	default:
		m.reset(c)
		return
	}
	if c.peerBufAlloc > 0 && c.credit() > 0 {
		c.creditAsked = false
	}
	m.grant(c)
}

// guestConnect dials the host program for a guest's REQUEST.
func (m *mux) guestConnect(k key, h Header) {
	if len(m.conns) >= maxConns {
		m.reply(h, OpRst)
		return
	}
	c := m.newConn(k, dialing, false)
	c.peerBufAlloc, c.peerFwdCnt = h.BufAlloc, h.FwdCnt
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		s, err := m.d.dial(m.ctx, k.local)
		if !m.post(event{kind: evDialed, c: c, sock: s, err: err}) && s != nil {
			s.Close()
		}
	}()
}

func (m *mux) newConn(k key, st state, hostInit bool) *conn {
	c := &conn{k: k, state: st, hostInit: hostInit, done: make(chan struct{}),
		grant: make(chan uint32, 1), outWake: make(chan struct{}, 1)}
	m.conns[k] = c
	return c
}

// attach gives c its socket and starts its reader and writer.
func (m *mux) attach(c *conn, s net.Conn) {
	c.sock = s
	m.wg.Add(2)
	go m.reader(c)
	go m.writer(c)
}

func (m *mux) handle(e event) {
	c := e.c
	switch e.kind {
	case evAccept:
		if len(m.conns) >= maxConns {
			e.sock.Close()
			return
		}
		k := key{local: m.port(e.port), peer: e.port}
		c := m.newConn(k, connecting, true)
		m.attach(c, e.sock)
		m.control(c, OpRequest, 0)
	case evDialed:
		if c.closed {
			if e.sock != nil {
				e.sock.Close()
			}
			return
		}
		if e.err != nil {
			m.d.log.Debug("guest connect to host port", "port", c.k.local, "err", e.err)
			m.reset(c)
			return
		}
		m.attach(c, e.sock)
		c.state = established
		m.control(c, OpResponse, 0)
		m.grant(c)
	case evRead:
		if c.closed {
			return
		}
		c.reading = false
		if n := len(e.data); n > 0 {
			c.txCnt += uint32(n)
			c.queued += n
			m.rxq = append(m.rxq, packet{h: m.header(c, OpRW, 0), data: e.data, c: c})
		}
		if e.err != nil {
			if !errors.Is(e.err, io.EOF) {
				m.reset(c)
				return
			}
			if !c.eof {
				c.eof = true
				m.control(c, OpShutdown, ShutdownSend)
			}
			if m.finish(c) {
				return
			}
		}
		m.grant(c)
	case evWrote:
		if c.closed {
			return
		}
		if e.err != nil {
			m.reset(c)
			return
		}
		c.inflight -= e.n
		c.fwdCnt += e.n
		if c.fwdCnt-c.sentFwdCnt >= bufAlloc/4 || (c.inflight == 0 && c.fwdCnt != c.sentFwdCnt) {
			m.control(c, OpCreditUpdate, 0)
		}
		m.finish(c)
	}
}

// port picks a free host port for a host-initiated connection to guest port peer.
func (m *mux) port(peer uint32) uint32 {
	for {
		p := m.nextPort
		m.nextPort++
		if m.nextPort == 0 {
			m.nextPort = firstHostPort
		}
		if _, ok := m.conns[key{local: p, peer: peer}]; !ok {
			return p
		}
	}
}

// grant lets c's reader read as much as the guest has room for, one grant at a time
// and only once what it read before reached the guest: host bytes wait in guest
// buffers, not ours.
func (m *mux) grant(c *conn) {
	if c.closed || c.state != established || c.eof || c.reading || c.queued > 0 {
		return
	}
	n := c.credit()
	if n == 0 {
		if !c.creditAsked {
			c.creditAsked = true
			m.control(c, OpCreditRequest, 0)
		}
		return
	}
	c.reading = true
	c.grant <- min(n, MaxPayload)
}

// finish ends c once both sides are done sending and the guest's bytes are all out.
func (m *mux) finish(c *conn) bool {
	if c.eof && c.guest&ShutdownSend != 0 && c.inflight == 0 {
		m.reset(c)
		return true
	}
	return false
}

func (m *mux) header(c *conn, op uint16, flags uint32) Header {
	return Header{SrcCID: HostCID, DstCID: m.d.cfg.CID, SrcPort: c.k.local, DstPort: c.k.peer,
		Type: TypeStream, Op: op, Flags: flags}
}

// control queues a packet without payload for c.
func (m *mux) control(c *conn, op uint16, flags uint32) {
	m.queue(packet{h: m.header(c, op, flags), c: c})
}

// reply answers a packet that belongs to no connection.
func (m *mux) reply(h Header, op uint16) {
	m.queue(packet{h: Header{SrcCID: HostCID, DstCID: m.d.cfg.CID, SrcPort: h.DstPort, DstPort: h.SrcPort,
		Type: TypeStream, Op: op, BufAlloc: bufAlloc}})
}

func (m *mux) queue(p packet) {
	if m.controls >= maxControl {
		m.d.log.Debug("vsock control packets dropped: guest posts no rx buffers")
		return
	}
	m.controls++
	m.rxq = append(m.rxq, p)
}

// reset sends RST for c and drops it.
func (m *mux) reset(c *conn) {
	m.control(c, OpRst, 0)
	m.drop(c)
}

// drop forgets c and closes its socket, which stops its reader and writer.
func (m *mux) drop(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	delete(m.conns, c.k)
	close(c.done)
	if c.sock != nil {
		c.sock.Close()
	}
}

func (m *mux) closeAll() {
	for _, c := range m.conns {
		m.drop(c)
	}
}

// fillRx delivers waiting packets into the guest's rx buffers (§5.10.6.2), splitting
// payloads to fit.
func (m *mux) fillRx() error {
	for len(m.rxq) > 0 {
		ch, err := m.rx.Pop()
		if errors.Is(err, virtio.ErrBadChain) {
			continue
		}
		if err != nil {
			return err
		}
		if ch == nil {
			return nil
		}
		room := ch.Writable()
		if room < HeaderSize {
			if err := m.rx.Push(ch.Head, 0); err != nil {
				return err
			}
			continue
		}
		p := &m.rxq[0]
		n := min(uint64(len(p.data)), room-HeaderSize)
		h := p.h
		h.Len = uint32(n)
		if c := p.c; c != nil {
			h.BufAlloc, h.FwdCnt = bufAlloc, c.fwdCnt
			c.sentFwdCnt = c.fwdCnt
		}
		ch.Write(h.Bytes())
		ch.Write(p.data[:n])
		if err := m.rx.Push(ch.Head, ch.Written()); err != nil {
			return err
		}
		p.data = p.data[n:]
		if p.c != nil && h.Op == OpRW {
			p.c.queued -= int(n)
		}
		if len(p.data) == 0 {
			c := p.c
			if h.Op != OpRW {
				m.controls--
			}
			m.rxq[0] = packet{}
			m.rxq = m.rxq[1:]
			if c != nil {
				m.grant(c)
			}
		}
	}
	return nil
}

// accept takes host connections until the device stops.
func (m *mux) accept() {
	defer m.wg.Done()
	for {
		s, err := m.d.ln.AcceptUnix()
		if err != nil {
			if m.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			m.d.log.Warn("vsock accept", "err", err)
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		m.wg.Add(1)
		go m.handshake(s)
	}
}

// handshake reads "CONNECT <port>\n" from a host program.
func (m *mux) handshake(s *net.UnixConn) {
	defer m.wg.Done()
	s.SetReadDeadline(time.Now().Add(handshakeTimeout))
	stop := context.AfterFunc(m.ctx, func() { s.SetReadDeadline(time.Unix(1, 0)) })
	port, err := readConnect(s)
	if !stop() || err != nil {
		if err != nil {
			m.d.log.Debug("vsock handshake", "err", err)
		}
		s.Close()
		return
	}
	s.SetReadDeadline(time.Time{})
	if !m.post(event{kind: evAccept, sock: s, port: port}) {
		s.Close()
	}
}

// readConnect reads the CONNECT line a byte at a time, so that no stream byte after it
// is consumed.
func readConnect(r io.Reader) (uint32, error) {
	var line []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("read CONNECT line: %w", err)
		}
		if b[0] == '\n' {
			break
		}
		if len(line) >= 32 {
			return 0, errors.New("CONNECT line too long")
		}
		line = append(line, b[0])
	}
	return ParseConnect(string(line))
}

// ParseConnect parses "CONNECT <port>" (without the newline).
func ParseConnect(line string) (uint32, error) {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "CONNECT ")
	if !ok {
		return 0, fmt.Errorf("handshake %q: want \"CONNECT <port>\"", line)
	}
	p, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("handshake %q: bad port: %w", line, err)
	}
	return uint32(p), nil
}

// reader moves host bytes in, as far as each grant allows.
func (m *mux) reader(c *conn) {
	defer m.wg.Done()
	for {
		var n uint32
		select {
		case n = <-c.grant:
		case <-c.done:
			return
		}
		buf := make([]byte, n)
		k, err := c.sock.Read(buf)
		if !m.post(event{kind: evRead, c: c, data: buf[:k], err: err}) || err != nil {
			return
		}
	}
}

// writer moves guest bytes out to the host program.
func (m *mux) writer(c *conn) {
	defer m.wg.Done()
	for {
		select {
		case <-c.outWake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		out := c.out
		c.out = nil
		c.mu.Unlock()
		var n uint32
		var err error
		for _, ch := range out {
			if ch.closeWrite {
				if cw, ok := c.sock.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				continue
			}
			if _, err = c.sock.Write(ch.b); err != nil {
				break
			}
			if ch.guest {
				n += uint32(len(ch.b))
			}
		}
		if (n > 0 || err != nil) && !m.post(event{kind: evWrote, c: c, n: n, err: err}) {
			return
		}
		if err != nil {
			return
		}
	}
}
