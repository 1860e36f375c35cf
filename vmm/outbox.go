package vmm

import (
	"io"
	"sync"
)

// maxPending bounds the console output queued for the host's writer (besides the batch
// being written): a guest that writes faster than the host reads is held back, as by a
// slow serial line.
const maxPending = 64 << 10

// outbox takes the guest's console output off the vCPU thread: the UART appends each
// byte to a buffer and a goroutine writes what has gathered with one write, so a line
// of output costs the vCPU no system calls.
type outbox struct {
	w      io.Writer
	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte
	spare  []byte
	busy   bool // the writer holds a batch
	closed bool
	err    error // the first write error: later output is refused
	done   chan struct{}
}

func newOutbox(w io.Writer) *outbox {
	o := &outbox{w: w, done: make(chan struct{})}
	o.cond.L = &o.mu
	go o.loop()
	return o
}

// Write queues p, waiting while maxPending bytes are queued.
func (o *outbox) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.buf) >= maxPending && o.err == nil && !o.closed {
		o.cond.Wait()
	}
	if o.err != nil {
		return 0, o.err
	}
	if o.closed {
		return 0, io.ErrClosedPipe
	}
	o.buf = append(o.buf, p...)
	o.cond.Broadcast()
	return len(p), nil
}

func (o *outbox) loop() {
	defer close(o.done)
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		for len(o.buf) == 0 && !o.closed {
			o.cond.Wait()
		}
		if len(o.buf) == 0 {
			return
		}
		batch := o.buf
		o.buf, o.busy = o.spare[:0], true
		o.cond.Broadcast() // room again for a guest held back
		o.mu.Unlock()
		_, err := o.w.Write(batch)
		o.mu.Lock()
		o.busy, o.spare = false, batch
		if err != nil && o.err == nil {
			o.err = err
			o.buf = o.buf[:0]
		}
		o.cond.Broadcast()
	}
}

// Flush waits until everything queued has been written (or a write failed).
func (o *outbox) Flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for (len(o.buf) > 0 || o.busy) && o.err == nil {
		o.cond.Wait()
	}
	return o.err
}

// Close writes what is queued and stops the writer.
func (o *outbox) Close() error {
	o.mu.Lock()
	o.closed = true
	o.cond.Broadcast()
	o.mu.Unlock()
	<-o.done
	return o.err
}
