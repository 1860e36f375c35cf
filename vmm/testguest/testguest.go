// Package testguest builds and describes hull's test guest: a freestanding 32-bit
// program entered through PVH (src/guest.c, src/entry.S, src/guest.ld, built by
// src/build.sh with gcc) that VM tests and benchmarks boot instead of Linux, because the
// build machines' KVM (PVM) runs tiny guests but not ordinary kernels. It is built as
// two ELF64 files: disk.elf (the virtio-blk test) and print.elf (print-only).
//
// The guest prints over the 8250 UART at 0x3f8, drives a virtio-blk device over
// virtio-mmio by polling (hull's slots at 0xd0000000, QEMU microvm's at 0xfeb00000, or
// the virtio_mmio.device= entries of its command line), reads sector 0 and checks
// Sector0, writes Sector1 to sector 1 and flushes. On a pass it resets through the i8042
// (a clean stop: exit status 0 under hull) and then writes 0 to the exit port 0xf4; on a
// failure it writes its Status to the exit port (exit status (v<<1)|1 under hull and
// QEMU's isa-debug-exit). The disk guest prints its command line first. The print-only
// guest prints its greeting and passes: the same bytes under every VMM, for benchmarks.
//
// The sources are embedded, so Build works from any binary (tests, hull bench);
// scripts/testguest runs the same build.sh from the tree. A triple fault is the guest's
// last resort: note that under PVM it hangs QEMU -enable-kvm instead of stopping it.
// This package must not import vmm: tests of vmm import it (cmd/hull-vmm
// is the exception by design).
package testguest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed src
var sources embed.FS

// Status is what the guest writes to the exit port.
type Status byte

// Statuses; guest.c defines the same values.
const (
	Pass     Status = 0
	NoDevice Status = 2 // no virtio-blk device found
	Init     Status = 3 // feature negotiation or queue setup failed
	Read     Status = 4 // reading sector 0 failed
	Pattern  Status = 5 // sector 0 does not hold Sector0
	Write    Status = 6 // writing sector 1 failed on a writable disk
	Flush    Status = 7 // flush failed
	ROWrite  Status = 8 // a read-only disk accepted the write
	Timeout  Status = 9 // the device never completed a request
)

// ExitCode is the exit status of a VMM process (QEMU isa-debug-exit, hull) whose guest
// wrote s to the exit port.
func (s Status) ExitCode() int { return int(s)<<1 | 1 }

// Lines the guest prints (each ends in "\r\n" on the wire).
const (
	Hello     = "testguest: hello from PVH"
	PassLine  = "testguest: PASS"
	ReadOK    = "testguest: read sector 0 ok"
	PatternOK = "testguest: sector 0 pattern ok"
	WriteOK   = "testguest: write sector 1 ok"
	FlushOK   = "testguest: flush ok"
	// ROPrefix starts the line of a read-only disk that refused the write.
	ROPrefix = "testguest: write sector 1 refused status="
)

// SectorSize is the virtio-blk sector size.
const SectorSize = 512

// Sector0 is what the guest expects in sector 0: "HULLDISK", then byte i = i*7+1.
func Sector0() []byte { return pattern("HULLDISK", 7, 1) }

// Sector1 is what the guest writes to sector 1: "GUESTWRT", then byte i = i*13+5.
func Sector1() []byte { return pattern("GUESTWRT", 13, 5) }

func pattern(magic string, mul, add int) []byte {
	b := make([]byte, SectorSize)
	copy(b, magic)
	for i := len(magic); i < SectorSize; i++ {
		b[i] = byte(i*mul + add)
	}
	return b
}

// WriteDisk creates a raw disk image of size bytes at path holding Sector0 in sector 0
// and zeros elsewhere.
func WriteDisk(path string, size int64) error {
	if size < 2*SectorSize || size%SectorSize != 0 {
		return fmt.Errorf("write test disk %s: size %d: want a multiple of %d, at least two sectors", path, size, SectorSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write test disk: %w", err)
	}
	if _, err := f.Write(Sector0()); err != nil {
		f.Close()
		return fmt.Errorf("write test disk %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("write test disk %s: %w", path, err)
	}
	return f.Close()
}

// ReadSector returns sector n of the disk image at path.
func ReadSector(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read sector %d: %w", n, err)
	}
	defer f.Close()
	b := make([]byte, SectorSize)
	if _, err := f.ReadAt(b, n*SectorSize); err != nil {
		return nil, fmt.Errorf("read sector %d of %s: %w", n, path, err)
	}
	return b, nil
}

// Guest is a built test guest.
type Guest struct {
	Disk  string // the virtio-blk guest (ELF64 with a PVH note)
	Print string // the print-only guest
}

// Version is a digest of the embedded sources: the cache folder's name.
func Version() string {
	h := sha256.New()
	for _, n := range []string{"build.sh", "entry.S", "guest.c", "guest.ld"} {
		b, _ := sources.ReadFile("src/" + n) // embedded: cannot fail
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Build compiles the guests into dir with gcc, from the embedded sources.
func Build(ctx context.Context, dir string) (Guest, error) {
	src, err := os.MkdirTemp("", "hull-testguest-src-")
	if err != nil {
		return Guest{}, fmt.Errorf("build test guest: %w", err)
	}
	defer os.RemoveAll(src)
	ents, err := sources.ReadDir("src")
	if err != nil {
		return Guest{}, fmt.Errorf("build test guest: %w", err)
	}
	for _, e := range ents {
		b, err := sources.ReadFile("src/" + e.Name())
		if err != nil {
			return Guest{}, fmt.Errorf("build test guest: %w", err)
		}
		if err := os.WriteFile(filepath.Join(src, e.Name()), b, 0o644); err != nil {
			return Guest{}, fmt.Errorf("build test guest: %w", err)
		}
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(src, "build.sh"), src, dir)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return Guest{}, fmt.Errorf("build test guest (needs gcc, ld, objcopy): %w\n%s", err, out.Bytes())
	}
	g := in(dir)
	return g, g.check()
}

// Cached returns the guests from cacheDir/testguest/<Version>, building them there first
// when they are missing.
func Cached(ctx context.Context, cacheDir string) (Guest, error) {
	dir := filepath.Join(cacheDir, "testguest", Version())
	g := in(dir)
	if g.check() == nil {
		return g, nil
	}
	return Build(ctx, dir)
}

func in(dir string) Guest {
	return Guest{Disk: filepath.Join(dir, "disk.elf"), Print: filepath.Join(dir, "print.elf")}
}

var errMissing = errors.New("test guest missing")

func (g Guest) check() error {
	for _, p := range []string{g.Disk, g.Print} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			return fmt.Errorf("%w: %s", errMissing, p)
		}
	}
	return nil
}
