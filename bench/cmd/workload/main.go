// Command workload is what hull bench runs inside every instance (container, microVM,
// peer): a system-call loop and file I/O, each printed as one JSON line
// {"metric":…,"unit":…,"value":…} on stdout. It is built static and copied into the
// bench image.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

type line struct {
	Metric string  `json:"metric"`
	Unit   string  `json:"unit"`
	Value  float64 `json:"value"`
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("workload", flag.ContinueOnError)
	n := fs.Int("n", 200000, "system-call loop iterations")
	size := fs.Int("mb", 32, "file I/O size in MiB")
	dir := fs.String("dir", "/tmp", "directory for file I/O")
	tag := fs.String("tag", "root", "suffix naming the file I/O location in metric names")
	if err := fs.Parse(args); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	emit := func(m, unit string, v float64) error { return enc.Encode(line{m, unit, v}) }
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: workload [-n N] [-mb M] [-dir D] syscalls|io|ready")
	}
	switch fs.Arg(0) {
	case "ready":
		// First output for cold-start measurements.
		_, err := fmt.Fprintln(out, "ready")
		return err
	case "syscalls":
		start := time.Now()
		for i := 0; i < *n; i++ {
			syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
		}
		if err := emit("getpid", "ns/op", float64(time.Since(start).Nanoseconds())/float64(*n)); err != nil {
			return err
		}
		start = time.Now()
		for i := 0; i < *n/10; i++ {
			fd, err := syscall.Open("/", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
			if err != nil {
				return fmt.Errorf("open /: %w", err)
			}
			syscall.Close(fd)
		}
		return emit("open-close", "ns/op", float64(time.Since(start).Nanoseconds())/float64(*n/10))
	case "io":
		return fileIO(*dir, *tag, *size, emit)
	}
	return fmt.Errorf("unknown workload %q", fs.Arg(0))
}

func fileIO(dir, tag string, mb int, emit func(string, string, float64) error) error {
	p := filepath.Join(dir, "hull-bench.dat")
	defer os.Remove(p)
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	defer f.Close()
	start := time.Now()
	for i := 0; i < mb; i++ {
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	if err := emit("write+fsync-"+tag, "MB/s", float64(mb)/time.Since(start).Seconds()); err != nil {
		return err
	}
	start = time.Now()
	const syncs = 50
	for i := 0; i < syncs; i++ {
		if _, err := f.WriteAt(buf[:4096], int64(i)*4096); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", p, err)
		}
	}
	if err := emit("fsync-4k-"+tag, "us/op", float64(time.Since(start).Microseconds())/syncs); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	start = time.Now()
	n, err := io.CopyBuffer(io.Discard, f, buf)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	return emit("read-"+tag, "MB/s", float64(n)/(1<<20)/time.Since(start).Seconds())
}
