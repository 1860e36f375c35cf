package net_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/internal/testenv"
	vnet "github.com/hullvm/hull/virtio/net"
	"github.com/hullvm/hull/virtio/virtiotest"
)

// htons for AF_PACKET protocol numbers.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestTap runs frames both ways through a real tap: what the guest sends comes out of
// the interface (seen by a packet socket), and what is sent on the interface reaches
// the guest.
func TestTap(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTun(t)
	tap, name, err := vnet.OpenTap("hulltest%d")
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	const etherType = 0x88b5 // IEEE local experimental
	ps, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(etherType)))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ps)
	if err := unix.Bind(ps, &unix.SockaddrLinklayer{Protocol: htons(etherType), Ifindex: link.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(virtiotest.Timeout))
	unix.SetsockoptTimeval(ps, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	dev, err := vnet.New(vnet.Config{Backend: tap, MAC: mac}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	d := virtiotest.Start(t, dev, ^uint64(0))

	// Guest to host.
	eth := func(dst, src []byte, payload string) []byte {
		f := append(append(append([]byte{}, dst...), src...), byte(etherType>>8), byte(etherType&0xff))
		return append(f, payload...)
	}
	broadcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	out := eth(broadcast, mac[:], "hello from the guest, padded to a minimum frame")
	tx := d.Queues[1]
	if _, _, err := tx.Add([][]byte{make([]byte, vnet.HeaderSize), out}, nil); err != nil {
		t.Fatal(err)
	}
	tx.Kick()
	tx.Wait(t, d.IRQ)
	got := make([]byte, 2048)
	n, _, err := unix.Recvfrom(ps, got, 0)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	if !bytes.Equal(got[:n], out) {
		t.Fatalf("interface got %x, want %x", got[:n], out)
	}

	// Host to guest: ignore the kernel's own frames (IPv6 autoconfiguration).
	rx := d.Queues[0]
	bufs := map[uint16][]virtiotest.Seg{}
	for range 16 {
		head, ws, err := rx.Add(nil, []uint32{2048})
		if err != nil {
			t.Fatal(err)
		}
		bufs[head] = ws
	}
	rx.Kick()
	in := eth(mac[:], []byte{0x02, 0, 0, 0, 0, 9}, "hello from the host, padded to a minimum frame")
	if err := unix.Sendto(ps, in, 0, &unix.SockaddrLinklayer{Ifindex: link.Attrs().Index, Halen: 6}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(virtiotest.Timeout)
	for time.Now().Before(deadline) {
		u := rx.Wait(t, d.IRQ)
		b := rx.Read(bufs[u.ID], u.Len)
		if len(b) < vnet.HeaderSize+14 || binary.BigEndian.Uint16(b[vnet.HeaderSize+12:]) != etherType {
			head, ws, err := rx.Add(nil, []uint32{2048}) // replace the buffer
			if err != nil {
				t.Fatal(err)
			}
			bufs[head] = ws
			rx.Kick()
			continue
		}
		if !bytes.Equal(b[vnet.HeaderSize:], in) {
			t.Fatalf("guest got %x, want %x", b[vnet.HeaderSize:], in)
		}
		if nb := binary.LittleEndian.Uint16(b[10:]); nb != 1 {
			t.Fatalf("num_buffers %d, want 1", nb)
		}
		return
	}
	t.Fatal("the host's frame never reached the guest")
}
