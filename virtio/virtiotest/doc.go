// Package virtiotest holds fakes for testing virtio devices without a VM: guest memory
// backed by a byte slice and a driver that builds descriptor chains the way a guest does.
// Only tests import it.
package virtiotest
