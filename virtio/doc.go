// Package virtio implements virtio 1.2 devices for a VMM: split virtqueues (§2.7) and
// the MMIO transport (§4.2). Devices live in subpackages.
//
// It knows only a guest Memory interface and an interrupt line, never KVM: it must not
// import kvm or vmm, so every device is testable against fake guest memory
// (virtio/virtiotest).
package virtio
