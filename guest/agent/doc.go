// Package agent is hull-init, PID 1 of the microVM guest: it mounts the layer disks as an
// overlay root, runs the container's OCI process, forwards signals and stdio over vsock,
// reports the exit status and powers the VM off.
//
// It runs inside the guest: it must not import vmm, kvm, images or container.
package agent
