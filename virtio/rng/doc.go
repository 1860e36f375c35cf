// Package rng is the virtio entropy device (virtio 1.2 §5.4): it fills the guest's
// buffers from an io.Reader, normally crypto/rand.
//
// It must not import kvm or vmm.
package rng
