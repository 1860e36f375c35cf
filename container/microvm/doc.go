// Package microvm runs OCI processes in KVM microVMs: the VM-isolation Runtime behind
// `hull run --isolation vm`, and the host-side API behind `hull vm exec` that boots a
// kernel and initramfs with disks attached and runs one process through the guest agent
// (hull-init, package guest/agent).
//
// A VM is the VMM (package vmm) running in the calling process: its virtio-vsock device
// listens on a Unix socket, which guest.DialVsock speaks Firecracker's CONNECT
// handshake on, and guest.Session carries the process's stdio, signals and exit status.
// hull exec (Runtime.Exec) dials the same socket from any hull process and runs a
// guest.ExecSession beside the main process.
// The root filesystem is the image's layer disks (read-only, serials hull-layer-N) under
// an overlay whose writable layer is a host-formatted ext4 scratch disk (hull-scratch).
// Volumes (-v) are ext4 disks made from the host directory at start and copied back
// when the VM ends: there is no shared-filesystem device (docs/vm-mode.md).
//
// It may import vmm, guest, bundle and container; it must not import the CLI (cmd/).
package microvm
