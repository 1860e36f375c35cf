package host

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/cache"
)

// kvmGetAPIVersion is _IO(KVMIO, 0x00) from include/uapi/linux/kvm.h.
const kvmGetAPIVersion = 0xAE00

// System is the real host, with the cache at d.
func System(d cache.Dir) Env {
	if abs, err := filepath.Abs(string(d)); err == nil {
		d = cache.Dir(abs)
	}
	return Env{
		FS:    os.DirFS("/"),
		Cache: d,
		OpenRW: func(p string) error {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			return f.Close()
		},
		KVMVersion: func(p string) (int, error) {
			fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return 0, err
			}
			defer unix.Close(fd)
			return unix.IoctlRetInt(fd, kvmGetAPIVersion)
		},
		LookPath: exec.LookPath,
		Version: func(ctx context.Context, p string) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, p, "--version").Output()
			return string(out), err
		},
		Euid: os.Geteuid(),
	}
}
