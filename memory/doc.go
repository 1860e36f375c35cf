// Package memory is guest physical memory: mmap-backed regions addressed by a typed
// guest address, with every access bounds-checked.
//
// It must not import kvm, virtio or vmm: the VMM registers its regions with KVM.
package memory
