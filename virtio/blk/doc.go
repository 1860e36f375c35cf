// Package blk is the virtio block device (virtio 1.2 §5.2) backed by a raw disk image
// file: read-only or read-write, flush (fdatasync), discard and write-zeroes (hole
// punching), and a serial id the guest sees in /sys/block/vdX/serial.
//
// It must not import kvm or vmm.
package blk
