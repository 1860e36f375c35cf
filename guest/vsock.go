package guest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// DialVsock connects to a guest vsock port through the VMM's unix socket, Firecracker's
// convention for host-initiated streams: connect to udsPath, send "CONNECT <port>\n",
// read "OK <hostport>\n". Until the agent listens the VMM drops the connection, so
// DialVsock retries, with a growing pause, until it succeeds or ctx ends.
func DialVsock(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	pause := 5 * time.Millisecond
	for {
		c, err := dialVsockOnce(ctx, udsPath, port)
		if err == nil {
			return c, nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("vsock %s port %d: %w (last attempt: %v)", udsPath, port, ctx.Err(), err)
		case <-t.C:
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

func dialVsockOnce(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", udsPath)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		c.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	// Read the reply a byte at a time: what follows the newline is the agent's.
	line := make([]byte, 0, 32)
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			c.Close()
			return nil, fmt.Errorf("read CONNECT reply: %w", err)
		}
		if b[0] == '\n' {
			break
		}
		if len(line) == cap(line) {
			c.Close()
			return nil, fmt.Errorf("CONNECT reply longer than %d bytes", cap(line))
		}
		line = append(line, b[0])
	}
	rest, ok := bytes.CutPrefix(line, []byte("OK "))
	if !ok {
		c.Close()
		return nil, fmt.Errorf("CONNECT reply %q, want OK <port>", line)
	}
	if _, err := strconv.ParseUint(string(rest), 10, 32); err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT reply %q: bad port", line)
	}
	if !stop() {
		c.Close()
		return nil, ctx.Err()
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
