package vmm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// entropy reads the host kernel's random pool with getrandom(2) for virtio-rng. It is
// what crypto/rand.Reader does on Linux, without linking Go's crypto packages into the
// VMM (their package state costs the VMM process resident pages at start-up).
type entropy struct{}

func (entropy) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Getrandom(p[n:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("getrandom: %w", err)
		}
		n += k
	}
	return n, nil
}
