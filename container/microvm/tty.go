package microvm

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/guest"
)

// execTerminal is hull's own terminal lent to an exec'd process: in raw mode while it
// runs (when it is the input), its size followed through SIGWINCH (when it is the
// output).
type execTerminal struct {
	size    guest.Winsize
	resize  <-chan guest.Winsize
	restore func()
}

// attachTerminal sets up stdio's terminal for an exec with a terminal; streams that are
// not terminals are left alone (the guest's terminal then has the default size).
func attachTerminal(stdio container.IO) (*execTerminal, error) {
	var undo []func()
	t := &execTerminal{}
	t.restore = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if fd, ok := terminalFd(stdio.Out); ok {
		t.size = winsize(fd)
		if t.size.Rows == 0 && stdio.Size.Rows > 0 {
			t.size = guest.Winsize{Rows: stdio.Size.Rows, Cols: stdio.Size.Cols}
		}
		resize := make(chan guest.Winsize, 1)
		winch := make(chan os.Signal, 1)
		done := make(chan struct{})
		signal.Notify(winch, unix.SIGWINCH)
		go func() {
			for {
				select {
				case <-done:
					return
				case <-winch:
					select {
					case resize <- winsize(fd):
					default:
					}
				}
			}
		}()
		undo = append(undo, func() { signal.Stop(winch); close(done) })
		t.resize = resize
	} else if stdio.Size.Rows > 0 {
		t.size = guest.Winsize{Rows: stdio.Size.Rows, Cols: stdio.Size.Cols}
	}
	if fd, ok := terminalFd(stdio.In); ok {
		old, err := term.MakeRaw(fd)
		if err != nil {
			t.restore()
			return nil, fmt.Errorf("terminal raw mode: %w", err)
		}
		undo = append(undo, func() { term.Restore(fd, old) })
	}
	return t, nil
}

// terminalFd returns the descriptor of f when it is a terminal.
func terminalFd(f any) (int, bool) {
	file, ok := f.(*os.File)
	if !ok || file == nil {
		return 0, false
	}
	fd := int(file.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return 0, false
	}
	return fd, true
}

func winsize(fd int) guest.Winsize {
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return guest.Winsize{}
	}
	return guest.Winsize{Rows: ws.Row, Cols: ws.Col}
}

// forwardSignals relays the signals this process gets that an exec passes on to its
// process (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) to the returned channel
// until stop is called.
func forwardSignals() (<-chan syscall.Signal, func()) {
	in := make(chan os.Signal, 8)
	out := make(chan syscall.Signal, 8)
	done := make(chan struct{})
	signal.Notify(in, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-in:
				if n, ok := s.(syscall.Signal); ok {
					select {
					case out <- n:
					default:
					}
				}
			}
		}
	}()
	return out, func() { signal.Stop(in); close(done) }
}
