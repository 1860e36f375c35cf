package testguest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hullvm/hull/internal/testenv"
)

func TestPatterns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		magic string
	}{
		{"sector0", Sector0(), "HULLDISK"},
		{"sector1", Sector1(), "GUESTWRT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.b) != SectorSize || !bytes.HasPrefix(tc.b, []byte(tc.magic)) {
				t.Fatalf("got %d bytes starting %q, want %d starting %q", len(tc.b), tc.b[:8], SectorSize, tc.magic)
			}
		})
	}
	if bytes.Equal(Sector0(), Sector1()) {
		t.Fatal("the two patterns are equal: the host could not tell a write happened")
	}
}

func TestWriteDisk(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := WriteDisk(p, 1<<20); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    int64
		want []byte
	}{
		{0, Sector0()},
		{1, make([]byte, SectorSize)},
		{2047, make([]byte, SectorSize)},
	} {
		got, err := ReadSector(p, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("sector %d: got %x..., want %x...", tc.n, got[:16], tc.want[:16])
		}
	}
	if err := WriteDisk(p, 700); err == nil {
		t.Error("WriteDisk accepted a size that is not a multiple of the sector size")
	}
}

// pvhEntry returns the address in the ELF's Xen PHYS32_ENTRY note.
func pvhEntry(t *testing.T, f *elf.File) uint32 {
	t.Helper()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		for len(b) >= 12 {
			namesz := binary.LittleEndian.Uint32(b)
			descsz := binary.LittleEndian.Uint32(b[4:])
			typ := binary.LittleEndian.Uint32(b[8:])
			name := (namesz + 3) &^ 3
			desc := (descsz + 3) &^ 3
			if uint64(12+name+desc) > uint64(len(b)) {
				t.Fatal("truncated note")
			}
			if typ == 18 && string(b[12:12+namesz]) == "Xen\x00" && descsz == 4 {
				return binary.LittleEndian.Uint32(b[12+name:])
			}
			b = b[12+name+desc:]
		}
	}
	t.Fatal("no XEN_ELFNOTE_PHYS32_ENTRY note")
	return 0
}

func TestBuild(t *testing.T) {
	testenv.RequireBinary(t, "gcc")
	g, err := Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{g.Disk, g.Print} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f, err := elf.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
				t.Errorf("got %v %v, want ELF64 x86-64 like a vmlinux", f.Class, f.Machine)
			}
			if e := pvhEntry(t, f); uint64(e) != f.Entry || e != 0x100000 {
				t.Errorf("PVH entry %#x, ELF entry %#x: want both 0x100000", e, f.Entry)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_LOAD && (p.Paddr < 0x100000 || p.Paddr+p.Memsz > 0x200000) {
					t.Errorf("load segment %#x+%#x leaves the MiB above 1 MiB", p.Paddr, p.Memsz)
				}
			}
		})
	}
}

func TestCachedReusesBuild(t *testing.T) {
	testenv.RequireBinary(t, "gcc")
	dir := t.TempDir()
	a, err := Cached(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Cached(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || !strings.Contains(a.Disk, Version()) {
		t.Fatalf("second Cached gave %+v after %+v; want the same folder named by Version %s", b, a, Version())
	}
}

// qemu boots a guest under QEMU microvm and returns its serial output and exit status.
func qemu(t *testing.T, kernel, cmdline string, disks ...QEMUDisk) (string, int) {
	t.Helper()
	bin := testenv.RequireBinary(t, "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, QEMUArgs(kernel, cmdline, disks...)...)
	cmd.Stdout = &out
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("qemu: %v\n%s", err, stderr.Bytes())
	}
	if ctx.Err() != nil {
		t.Fatalf("qemu did not exit within 60 s; output:\n%s", out.Bytes())
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n"), cmd.ProcessState.ExitCode()
}

// TestQEMU checks the guest against QEMU's microvm, the reference VMM: what it prints,
// how it ends, and what it leaves on the disk.
func TestQEMU(t *testing.T) {
	testenv.RequireKVM(t)
	g := Get(t)
	for _, tc := range []struct {
		name    string
		print   bool
		cmdline string
		disk    bool
		ro      bool
		want    []string
		status  Status
		sector1 []byte // sector 1 after the run
	}{
		{name: "print", print: true, want: []string{Hello, PassLine}, status: Pass},
		{name: "disk", disk: true, want: []string{Hello, `testguest: id="hull-test"`, ReadOK, PatternOK, WriteOK, FlushOK, PassLine}, status: Pass, sector1: Sector1()},
		{name: "read-only", disk: true, ro: true, want: []string{Hello, "ro=1", PatternOK, ROPrefix + "1", PassLine}, status: Pass, sector1: make([]byte, SectorSize)},
		{name: "no-disk", cmdline: "hello hull", want: []string{Hello, `testguest: cmdline="hello hull"`, "testguest: no virtio-blk device", "FAIL status=2"}, status: NoDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kernel := g.Disk
			if tc.print {
				kernel = g.Print
			}
			var disks []QEMUDisk
			img := filepath.Join(t.TempDir(), "disk.img")
			if tc.disk {
				if err := WriteDisk(img, 1<<20); err != nil {
					t.Fatal(err)
				}
				disks = append(disks, QEMUDisk{Path: img, ReadOnly: tc.ro, ID: "hull-test"})
			}
			out, code := qemu(t, kernel, tc.cmdline, disks...)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if code != tc.status.ExitCode() {
				t.Errorf("exit status %d, want %d (guest status %d)", code, tc.status.ExitCode(), tc.status)
			}
			if tc.sector1 != nil {
				got, err := ReadSector(img, 1)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tc.sector1) {
					t.Errorf("sector 1 after the run starts %q, want %q", got[:8], tc.sector1[:8])
				}
			}
		})
	}
}
