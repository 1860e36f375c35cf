package microvm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The control socket lets another hull process (hull kill, stop, rm) signal a VM
// container's process through the hull process that runs the VM. One request per
// connection: "signal N\n", answered "ok\n" or "error MESSAGE\n".

// control serves a VM's control socket.
type control struct {
	l    *net.UnixListener
	path string
	wg   sync.WaitGroup
}

// maxRequest caps a control request line.
const maxRequest = 64

func listenControl(path string, signal func(syscall.Signal) error) (*control, error) {
	os.Remove(path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	c := &control{l: l, path: path}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := l.AcceptUnix()
			if err != nil {
				return
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				reply := "ok"
				if err := serveRequest(conn, signal); err != nil {
					reply = "error " + strings.ReplaceAll(err.Error(), "\n", " ")
				}
				fmt.Fprintln(conn, reply)
			}()
		}
	}()
	return c, nil
}

func serveRequest(conn net.Conn, signal func(syscall.Signal) error) error {
	line, err := bufio.NewReaderSize(conn, maxRequest).ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	n, err := parseSignal(string(line))
	if err != nil {
		return err
	}
	return signal(n)
}

// parseSignal parses "signal N\n" with N in 1..64.
func parseSignal(line string) (syscall.Signal, error) {
	v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "signal ")
	if !ok {
		return 0, fmt.Errorf("bad request %q: want signal N", line)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 64 {
		return 0, fmt.Errorf("bad signal %q: want 1 to 64", v)
	}
	return syscall.Signal(n), nil
}

func (c *control) Close() {
	c.l.Close()
	c.wg.Wait()
	os.Remove(c.path)
}

// sendSignal asks the hull process serving path to forward sig.
func sendSignal(ctx context.Context, path string, sig syscall.Signal) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "signal %d\n", int(sig)); err != nil {
		return err
	}
	line, err := bufio.NewReaderSize(conn, 4096).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	line = strings.TrimSpace(line)
	if line == "ok" {
		return nil
	}
	return errors.New(strings.TrimPrefix(line, "error "))
}
