package net

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// HeaderSize is the virtio_net_hdr of a VIRTIO_F_VERSION_1 device, num_buffers
// included (§5.1.6), and the vnet header size the tap is set to.
const HeaderSize = 12

// OpenTap opens the tap device name (creating it if it does not exist; the kernel picks
// a name for a pattern such as "tap%d") with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR and a
// 12-byte vnet header. It needs CAP_NET_ADMIN. The tap goes away when the last file
// on it is closed, unless it was made persistent. Bringing the link up and addressing
// it is the caller's business.
func OpenTap(name string) (*os.File, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("tap %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("create tap %q (needs CAP_NET_ADMIN): %w", name, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, HeaderSize); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("tap %q: set vnet header size: %w", name, err)
	}
	// No offloads: the guest is offered none, so the tap must hand it only whole,
	// checksummed frames.
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("tap %q: set offloads: %w", name, err)
	}
	// Non-blocking before NewFile: the file joins Go's poller, so reads take deadlines.
	return os.NewFile(uintptr(fd), "/dev/net/tun"), ifr.Name(), nil
}
