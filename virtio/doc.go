// Package virtio implements the virtio 1.2 device side for a VMM: split virtqueues
// (§2.7) read as Reader/Writer streams over descriptor chains, and the modern
// virtio-mmio transport (§4.2) with feature negotiation, the device status state machine
// and reset. Devices live in subpackages (blk, rng, vsock, net); virtiotest holds the
// fake guest memory and driver they are tested with. docs/virtio.md has the threat model.
//
// Guest input is hostile: every address, length and index is checked, chains are capped
// at the queue size, and a malformed chain or ring is an error (or DEVICE_NEEDS_RESET),
// never a panic or a hang.
//
// It knows only a guest Memory interface and an Interrupt line, never KVM: it must not
// import kvm or vmm, so every device is testable against fake guest memory
// (virtio/virtiotest).
package virtio
