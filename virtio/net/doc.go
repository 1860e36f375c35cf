// Package net is the virtio network device (virtio 1.2 §5.1) backed by a Linux tap
// device opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR: frames pass between the guest's
// queues and the tap with their 12-byte virtio_net_hdr.
//
// It must not import kvm or vmm.
package net
