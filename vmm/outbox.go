package vmm

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// maxPending bounds the console output queued for the host's writer (besides the batch
// being written): a guest that writes faster than the host reads is held back, as by a
// slow serial line.
const maxPending = 64 << 10

// linger is how long output without a line end waits for more before it is written:
// a shell's prompt or the echo of a key, which a guest writes and then idles.
const linger = time.Millisecond

// outbox takes the guest's console output off the vCPU thread: the UART appends each
// byte to a buffer, and a goroutine writes what has gathered with one write once a line
// ends, maxPending/4 bytes are queued, or linger has passed. A line of output costs
// the vCPU no system calls and one wake-up of the writer, not one per byte (each
// wake-up is a few microseconds on the vCPU thread, as much as a tenth of an exit).
type outbox struct {
	w      io.Writer
	linger time.Duration
	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte
	spare  []byte
	wake   bool // the writer is told to take buf
	timer  *time.Timer
	timed  bool // timer runs for what buf holds
	busy   bool // the writer holds a batch
	closed bool
	err    error // the first write error: later output is refused
	done   chan struct{}
}

func newOutbox(w io.Writer) *outbox {
	o := &outbox{w: w, linger: linger, done: make(chan struct{})}
	o.cond.L = &o.mu
	o.timer = time.AfterFunc(time.Hour, o.expire)
	o.timer.Stop()
	go o.loop()
	return o
}

// expire sends the writer what lingered.
func (o *outbox) expire() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.timed {
		o.timed = false
		o.signal()
	}
}

// signal tells the writer to take buf; o.mu is held.
func (o *outbox) signal() {
	if !o.wake {
		o.wake = true
		o.cond.Broadcast()
	}
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
	switch {
	case o.wake:
	case bytes.IndexByte(p, '\n') >= 0 || len(o.buf) >= maxPending/4:
		o.signal()
	case !o.timed:
		o.timed = true
		o.timer.Reset(o.linger)
	}
	return len(p), nil
}

func (o *outbox) loop() {
	defer close(o.done)
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		for !(o.wake && len(o.buf) > 0) && !o.closed {
			o.cond.Wait()
		}
		if len(o.buf) == 0 {
			return
		}
		batch := o.buf
		o.buf, o.busy, o.wake = o.spare[:0], true, false
		if o.timed {
			o.timed = false
			o.timer.Stop()
		}
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
	if len(o.buf) > 0 {
		o.signal()
	}
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
	o.timer.Stop()
	return o.err
}
