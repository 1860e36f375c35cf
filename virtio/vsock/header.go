package vsock

import (
	"encoding/binary"
	"fmt"
)

// HeaderSize is the size of struct virtio_vsock_hdr (§5.10.6), packed.
const HeaderSize = 44

// Operations (§5.10.6).
const (
	OpInvalid       = 0
	OpRequest       = 1
	OpResponse      = 2
	OpRst           = 3
	OpShutdown      = 4
	OpRW            = 5
	OpCreditUpdate  = 6
	OpCreditRequest = 7
)

// TypeStream is VIRTIO_VSOCK_TYPE_STREAM; seqpacket is not offered.
const TypeStream = 1

// Shutdown flags (§5.10.6.5).
const (
	ShutdownRcv  = 1 // the sender will receive no more
	ShutdownSend = 2 // the sender will send no more
)

// HostCID is the host's address (§5.10.4: CID 2).
const HostCID = 2

// MaxPayload bounds one packet's payload (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
const MaxPayload = 64 << 10

// Header mirrors struct virtio_vsock_hdr (§5.10.6), little-endian and packed.
type Header struct {
	SrcCID   uint64
	DstCID   uint64
	SrcPort  uint32
	DstPort  uint32
	Len      uint32
	Type     uint16
	Op       uint16
	Flags    uint32
	BufAlloc uint32
	FwdCnt   uint32
}

// ParseHeader decodes a header from the first HeaderSize bytes of b. It checks only
// what every packet must satisfy: the length bound. Addresses and ops are the
// connection logic's business.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("vsock header of %d bytes, want %d", len(b), HeaderSize)
	}
	h := Header{
		SrcCID:   binary.LittleEndian.Uint64(b[0:]),
		DstCID:   binary.LittleEndian.Uint64(b[8:]),
		SrcPort:  binary.LittleEndian.Uint32(b[16:]),
		DstPort:  binary.LittleEndian.Uint32(b[20:]),
		Len:      binary.LittleEndian.Uint32(b[24:]),
		Type:     binary.LittleEndian.Uint16(b[28:]),
		Op:       binary.LittleEndian.Uint16(b[30:]),
		Flags:    binary.LittleEndian.Uint32(b[32:]),
		BufAlloc: binary.LittleEndian.Uint32(b[36:]),
		FwdCnt:   binary.LittleEndian.Uint32(b[40:]),
	}
	if h.Len > MaxPayload {
		return h, fmt.Errorf("vsock packet payload of %d bytes: more than %d", h.Len, MaxPayload)
	}
	return h, nil
}

// Encode writes h into b[:HeaderSize].
func (h Header) Encode(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], h.SrcCID)
	binary.LittleEndian.PutUint64(b[8:], h.DstCID)
	binary.LittleEndian.PutUint32(b[16:], h.SrcPort)
	binary.LittleEndian.PutUint32(b[20:], h.DstPort)
	binary.LittleEndian.PutUint32(b[24:], h.Len)
	binary.LittleEndian.PutUint16(b[28:], h.Type)
	binary.LittleEndian.PutUint16(b[30:], h.Op)
	binary.LittleEndian.PutUint32(b[32:], h.Flags)
	binary.LittleEndian.PutUint32(b[36:], h.BufAlloc)
	binary.LittleEndian.PutUint32(b[40:], h.FwdCnt)
}

// Bytes returns the encoded header.
func (h Header) Bytes() []byte {
	b := make([]byte, HeaderSize)
	h.Encode(b)
	return b
}
