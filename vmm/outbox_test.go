package vmm

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// slowWriter records what it is given and blocks each write until released.
type slowWriter struct {
	mu      sync.Mutex
	got     bytes.Buffer
	writes  int
	release chan struct{}
	err     error
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if w.release != nil {
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.err != nil {
		return 0, w.err
	}
	return w.got.Write(p)
}

func TestOutboxKeepsOrderAndCoalesces(t *testing.T) {
	w := &slowWriter{release: make(chan struct{})}
	o := newOutbox(w)
	var want bytes.Buffer
	for i := range 1000 {
		b := []byte{byte('a' + i%26)}
		want.Write(b)
		if _, err := o.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	close(w.release)
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.got.Bytes(), want.Bytes()) {
		t.Fatalf("wrote %q, want %q", w.got.Bytes(), want.Bytes())
	}
	// The first write may hold one byte; the rest gathered while it was blocked.
	if w.writes > 2 {
		t.Errorf("%d writes for 1000 bytes queued behind a blocked writer, want at most 2", w.writes)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Write([]byte("x")); err == nil {
		t.Error("write after Close succeeded")
	}
}

func TestOutboxHoldsBackAFloodingGuest(t *testing.T) {
	w := &slowWriter{release: make(chan struct{})}
	o := newOutbox(w)
	chunk := make([]byte, 4096)
	wrote := make(chan int)
	go func() {
		n := 0
		for range 4 * maxPending / len(chunk) {
			o.Write(chunk)
			n += len(chunk)
		}
		wrote <- n
	}()
	// Wait until the queue is full: the guest is then held, not queueing more.
	for {
		o.mu.Lock()
		pending := len(o.buf)
		o.mu.Unlock()
		if pending >= maxPending {
			break
		}
		runtime.Gosched()
	}
	for range 100 {
		runtime.Gosched()
	}
	select {
	case n := <-wrote:
		t.Fatalf("the guest queued %d bytes while the host wrote nothing; the bound is %d", n, maxPending)
	default:
	}
	o.mu.Lock()
	pending := len(o.buf)
	o.mu.Unlock()
	if pending > maxPending+len(chunk) {
		t.Errorf("%d bytes pending, bound %d", pending, maxPending)
	}
	close(w.release)
	if n := <-wrote; n != 4*maxPending {
		t.Fatalf("wrote %d", n)
	}
	o.Close()
	if w.got.Len() != 4*maxPending {
		t.Errorf("host got %d bytes, want %d", w.got.Len(), 4*maxPending)
	}
}

func TestOutboxReportsAWriteError(t *testing.T) {
	broken := errors.New("broken pipe")
	o := newOutbox(&slowWriter{err: broken})
	o.Write([]byte("lost"))
	if err := o.Flush(); !errors.Is(err, broken) {
		t.Fatalf("Flush = %v, want %v", err, broken)
	}
	if _, err := o.Write([]byte("more")); !errors.Is(err, broken) {
		t.Errorf("Write after a failed write = %v, want %v", err, broken)
	}
	if err := o.Close(); !errors.Is(err, broken) {
		t.Errorf("Close = %v", err)
	}
}

// chanWriter hands each write to a channel.
type chanWriter chan string

func (w chanWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// next waits for the next write, failing the test if none comes.
func (w chanWriter) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-w:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no write in 10 s")
		return ""
	}
}

func TestOutboxWritesWholeLines(t *testing.T) {
	w := make(chanWriter, 4)
	o := newOutbox(w)
	defer o.Close()
	o.linger = time.Hour // nothing is written for want of a line end
	for _, b := range []byte("hello\r\n") {
		o.Write([]byte{b})
	}
	if got := w.next(t); got != "hello\r\n" {
		t.Errorf("first write %q, want the whole line in one", got)
	}
	o.Write([]byte("world"))
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := w.next(t); got != "world" {
		t.Errorf("Flush wrote %q, want the rest", got)
	}
}

func TestOutboxWritesAPromptAfterLinger(t *testing.T) {
	w := make(chanWriter, 4)
	o := newOutbox(w)
	defer o.Close()
	o.Write([]byte("/ # "))
	if got := w.next(t); got != "/ # " {
		t.Errorf("wrote %q, want the prompt", got)
	}
	// Again, once the timer has fired once.
	o.Write([]byte("x"))
	if got := w.next(t); got != "x" {
		t.Errorf("wrote %q, want the echo", got)
	}
}
