package lab

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockPath is the machine-wide lab lock file.
const lockPath = "/tmp/hull-lab.lock"

// lock takes the machine-wide lab lock, so that L1s run one at a time: each is a QEMU in
// software emulation that wants every core, and two at once make both slow enough to
// trip their timeouts. It waits for the lock until ctx ends and returns the release.
func lock(ctx context.Context) (func(), error) {
	// A fixed path, not os.TempDir: the lock is per machine, whatever TMPDIR a caller has.
	p := lockPath
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab: lock %s: %w", p, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lab: lock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lab: waiting for another lab run to finish: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
