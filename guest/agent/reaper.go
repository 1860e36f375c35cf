package agent

import (
	"errors"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper owns every wait4 of the agent: the main process and each exec'd process run
// at once, so no session may wait for "any child" itself. A process is started through
// fork, which registers its pid before any wait can see it; the reaper hands its wait
// status to that waiter alone. With all set (the agent is PID 1) it also reaps every
// orphan the kernel reparents to the agent, and drops their statuses.
type reaper struct {
	all  bool
	sigc chan os.Signal
	kick chan struct{}
	stop chan struct{}

	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	empty   []chan struct{} // closed once the agent has no child left
}

func newReaper(all bool) *reaper {
	r := &reaper{
		all:     all,
		sigc:    make(chan os.Signal, 1),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		waiters: map[int]chan unix.WaitStatus{},
	}
	signal.Notify(r.sigc, unix.SIGCHLD)
	go r.loop()
	return r
}

// close stops the reaper (tests; the agent's lives as long as the agent).
func (r *reaper) close() {
	signal.Stop(r.sigc)
	close(r.stop)
}

func (r *reaper) loop() {
	for {
		select {
		case <-r.stop:
			return
		case <-r.sigc:
		case <-r.kick:
		}
		r.pass()
	}
}

func (r *reaper) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// fork runs start, which starts one child and returns its pid, and returns a channel
// that receives the child's wait status once it has exited. The lock held across start
// keeps a pass from reaping the child before its waiter is registered.
func (r *reaper) fork(start func() (int, error)) (int, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	pid, err := start()
	if err != nil {
		r.mu.Unlock()
		return 0, nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiters[pid] = ch
	r.mu.Unlock()
	r.poke()
	return pid, ch, nil
}

// whenEmpty returns a channel closed once a pass finds no child left to wait for.
func (r *reaper) whenEmpty() <-chan struct{} {
	ch := make(chan struct{})
	r.mu.Lock()
	r.empty = append(r.empty, ch)
	r.mu.Unlock()
	r.poke()
	return ch
}

// pass reaps every child that has exited, without blocking.
func (r *reaper) pass() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.all {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil { // ECHILD: no child at all
				r.emptyLocked()
				return
			}
			if pid <= 0 {
				return // children remain, none has exited
			}
			r.deliverLocked(pid, ws)
		}
	}
	// Only the agent's own processes: a test agent may share its process with others'
	// children.
	for pid := range r.waiters {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		for errors.Is(err, unix.EINTR) {
			got, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		if err != nil {
			// Gone without a status (someone else reaped it): report it killed.
			r.deliverLocked(pid, unix.WaitStatus(unix.SIGKILL))
			continue
		}
		if got == pid {
			r.deliverLocked(pid, ws)
		}
	}
	if len(r.waiters) == 0 {
		r.emptyLocked()
	}
}

func (r *reaper) deliverLocked(pid int, ws unix.WaitStatus) {
	if ch, ok := r.waiters[pid]; ok {
		ch <- ws
		delete(r.waiters, pid)
	}
}

func (r *reaper) emptyLocked() {
	for _, ch := range r.empty {
		close(ch)
	}
	r.empty = nil
}
