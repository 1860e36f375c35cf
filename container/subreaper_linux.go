package container

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Subreaper makes the calling process a child subreaper, so a container's first
// process, which the OCI runtime forks and then leaves, becomes its child and its exit
// status can be collected (prctl(2) PR_SET_CHILD_SUBREAPER).
func Subreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	return nil
}

// ExitStatus turns a wait status into Docker's exit status: the exit code, or
// 128+signal for a process killed by a signal (137 for SIGKILL, as after an OOM kill).
func ExitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
