package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/guest"
)

// Final is what the agent does once the process has been reported.
type Final string

// Final actions. The guest kernel has no ACPI, so Restart with reboot=k on the kernel
// command line (an i8042 reset, which the VMM treats as a clean exit) is the default.
const (
	FinalRestart  Final = "restart"
	FinalPowerOff Final = "poweroff"
	FinalHalt     Final = "halt"
	FinalNone     Final = "none" // exit: the kernel panics, and panic=-1 reboots
)

// Config is what the kernel command line tells the agent.
type Config struct {
	Port  uint32 // vsock port to listen on: hull.port=, default guest.Port
	Final Final  // hull.final=
	// Channel is where the host speaks the protocol: "vsock" (the default), or the
	// path of a character device such as a virtio console port (/dev/hvc0), set to raw
	// mode, for VMMs without vsock (QEMU without vhost-vsock in tests): hull.channel=.
	Channel string
}

// ParseCmdline reads the agent's settings from a kernel command line (/proc/cmdline).
// Unknown words are ignored; bad hull.* values are errors.
func ParseCmdline(s string) (Config, error) {
	c := Config{Port: guest.Port, Final: FinalRestart, Channel: "vsock"}
	for _, w := range strings.Fields(s) {
		k, v, _ := strings.Cut(w, "=")
		switch k {
		case "hull.port":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return c, fmt.Errorf("hull.port=%q: want a vsock port number", v)
			}
			c.Port = uint32(n)
		case "hull.channel":
			if v != "vsock" && !strings.HasPrefix(v, "/dev/") {
				return c, fmt.Errorf("hull.channel=%q: want vsock or a /dev path", v)
			}
			c.Channel = v
		case "hull.final":
			switch f := Final(v); f {
			case FinalRestart, FinalPowerOff, FinalHalt, FinalNone:
				c.Final = f
			default:
				return c, fmt.Errorf("hull.final=%q: want restart, poweroff, halt or none", v)
			}
		}
	}
	return c, nil
}

// Init is hull-init's main as PID 1: mount the guest's filesystems, accept the host on
// vsock, serve one Run, sync and end the VM. An error before the host connects goes to
// the console (stderr) and ends the VM too: the agent never leaves it hanging.
func Init(log *slog.Logger) {
	cfg := Config{Port: guest.Port, Final: FinalRestart, Channel: "vsock"}
	err := func() error {
		if err := mountBase(); err != nil {
			return err
		}
		if err := loopbackUp(); err != nil {
			// A container without loopback still runs; say why 127.0.0.1 fails.
			log.Warn("loopback", "err", err)
		}
		b, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			return fmt.Errorf("read kernel command line: %w", err)
		}
		if cfg, err = ParseCmdline(string(b)); err != nil {
			return err
		}
		if cfg.Channel != "vsock" {
			return serveDevice(log, cfg.Channel)
		}
		return serveVsock(log, cfg.Port)
	}()
	if err != nil {
		log.Error("hull-init failed", "err", err)
	}
	end(log, cfg.Final)
}

func serveVsock(log *slog.Logger, port uint32) error {
	l, err := listenVsock(port)
	if err != nil {
		return err
	}
	defer unix.Close(l)
	log.Info("hull-init listening", "vsock_port", port)
	ex, err := New(log).ServeAll(context.Background(), func() (io.ReadWriteCloser, error) { return acceptVsock(l) })
	log.Info("process exited", "status", ex.Status, "reason", ex.Reason)
	return err
}

// closeWait bounds how long the agent waits for the host to hang up after the exit.
const closeWait = 2 * time.Second

// awaitClose waits until the host closes conn (it does once it has the exit frame), or
// d passes. A write to a vsock socket only queues the data in the guest kernel, which
// hands it to the device later: ending the VM at once could lose the exit frame.
func awaitClose(conn io.Reader, d time.Duration) {
	dl, ok := conn.(interface{ SetReadDeadline(time.Time) error })
	if !ok || dl.SetReadDeadline(time.Now().Add(d)) != nil {
		return
	}
	buf := make([]byte, 4096)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}

// serveDevice serves one Run over a character device in raw mode.
func serveDevice(log *slog.Logger, path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer f.Close()
	if err := control(f, makeRaw); err != nil {
		return fmt.Errorf("channel %s raw mode: %w", path, err)
	}
	// Drop whatever arrived before raw mode; the host waits for our hello.
	control(f, func(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH) })
	log.Info("hull-init listening", "channel", path)
	ex, err := New(log).Serve(context.Background(), f)
	log.Info("process exited", "status", ex.Status, "reason", ex.Reason)
	return err
}

// makeRaw sets a terminal to raw mode (as cfmakeraw(3)): bytes pass unchanged.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// mountBase mounts what the agent itself needs; the kernel gave it only the initramfs.
func mountBase() error {
	type mnt struct {
		src, dst, typ string
		flags         uintptr
		data          string
		optional      bool
	}
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	for _, m := range []mnt{
		{"proc", "/proc", "proc", nosuid, "", false},
		{"sysfs", "/sys", "sysfs", nosuid, "", false},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", false},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "ptmxmode=0666,mode=0620", false},
		{"tmpfs", "/dev/shm", "tmpfs", nosuid, "mode=1777", true},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", false},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid, "", true},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil && !m.optional {
			return fmt.Errorf("create %s: %w", m.dst, err)
		}
		err := unix.Mount(m.src, m.dst, m.typ, m.flags, m.data)
		if errors.Is(err, unix.EBUSY) {
			continue // already mounted (DEVTMPFS_MOUNT)
		}
		if err != nil && !m.optional {
			return fmt.Errorf("mount %s on %s: %w", m.typ, m.dst, err)
		}
	}
	return nil
}

// loopbackUp brings up lo, as an OCI runtime does in a container's own network
// namespace: the kernel then gives it 127.0.0.1 and ::1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

func listenVsock(port uint32) (int, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("vsock socket: %w (does the VMM attach a virtio-vsock device?)", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind vsock port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 4); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on vsock port %d: %w", port, err)
	}
	return fd, nil
}

func acceptVsock(l int) (*os.File, error) {
	for {
		fd, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("accept vsock: %w", err)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return nil, err
		}
		return os.NewFile(uintptr(fd), "vsock"), nil
	}
}

// end syncs the disks and ends the VM by the configured action.
func end(log *slog.Logger, f Final) {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_RESTART
	switch f {
	case FinalNone:
		os.Exit(0)
	case FinalPowerOff:
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	case FinalHalt:
		cmd = unix.LINUX_REBOOT_CMD_HALT
	}
	if err := unix.Reboot(cmd); err != nil {
		log.Error("reboot failed; exiting, so the kernel panics (panic=-1 reboots)", "action", f, "err", err)
	}
	os.Exit(1)
}
