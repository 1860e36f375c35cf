// Package vmm builds and runs a microVM: guest memory, the KVM VM and vCPUs, the boot
// protocol, the serial console, the i8042 reset line and virtio-mmio devices, read like a
// recipe in New. It is the only package that wires kvm to devices.
//
// It must not import the CLI, images or container packages.
package vmm
