package agent

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/internal/testenv"
)

// TestReaperDispatch starts children that exit in an order other than their start
// order, each with its own status, and checks every waiter gets its own child's status;
// then that the reaper reports having no child left. It runs in the test process, so
// the reaper waits for its own children only (all false), as an agent that is not
// PID 1 does.
func TestReaperDispatch(t *testing.T) {
	sh := testenv.RequireBinary(t, "sh")
	r := newReaper(false)
	defer r.close()
	type child struct {
		pid    int
		status <-chan unix.WaitStatus
		want   unix.WaitStatus
	}
	var kids []child
	for i, c := range []struct {
		script string
		exit   int
		sig    syscall.Signal
	}{
		{"sleep 0.3; exit 3", 3, 0},
		{"exit 0", 0, 0},
		{"sleep 0.1; exit 42", 42, 0},
		{"kill -TERM $$", 0, syscall.SIGTERM},
		{"exit 7", 7, 0},
	} {
		pid, st, err := r.fork(func() (int, error) {
			return syscall.ForkExec(sh, []string{"sh", "-c", c.script}, &syscall.ProcAttr{})
		})
		if err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		want := unix.WaitStatus(c.exit << 8)
		if c.sig != 0 {
			want = unix.WaitStatus(c.sig)
		}
		kids = append(kids, child{pid, st, want})
	}
	for _, k := range kids {
		select {
		case ws := <-k.status:
			if ws != k.want {
				t.Errorf("pid %d: status %s, want %s", k.pid, show(ws), show(k.want))
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("pid %d: no status", k.pid)
		}
	}
	select {
	case <-r.whenEmpty():
	case <-time.After(30 * time.Second):
		t.Fatal("the reaper does not report that no child is left")
	}
}

func show(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return fmt.Sprintf("killed by %v", ws.Signal())
	}
	return fmt.Sprintf("exit %d", ws.ExitStatus())
}
