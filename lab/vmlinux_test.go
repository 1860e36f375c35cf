package lab_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hullvm/hull/internal/testenv"
)

// TestLabVmlinux runs scripts/lab-vmlinux on a copy of the lab's kernel: it must leave an
// ELF kernel with a PVH entry note (what QEMU needs to boot it without decompressing),
// and do nothing on a second run.
func TestLabVmlinux(t *testing.T) {
	cfg := labConfig(t)
	testenv.RequireBinary(t, "xz")
	cache := t.TempDir()
	lab := filepath.Join(cache, "lab")
	if err := os.MkdirAll(lab, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfg.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lab, "vmlinuz"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../scripts/lab-vmlinux")
	if err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		cmd := exec.Command(script)
		cmd.Env = append(os.Environ(), "HULL_CACHE="+cache)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("lab-vmlinux: %v\n%s", err, out)
		}
	}
	run()
	out := filepath.Join(lab, "vmlinux")
	st1, err := os.Stat(out)
	if err != nil {
		t.Fatalf("no vmlinux: %v", err)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("vmlinux is not ELF: %v", err)
	}
	defer f.Close()
	if !hasPVHNote(t, f) {
		t.Error("vmlinux has no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)")
	}
	self, err := elf.Open(os.Args[0]) // the test binary: an ELF without the note
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if hasPVHNote(t, self) {
		t.Error("hasPVHNote found a PVH note in the test binary")
	}
	run()
	if st2, err := os.Stat(out); err != nil || !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("second run rewrote vmlinux (%v)", err)
	}
}

// hasPVHNote looks for a "Xen" note of type 18 in the ELF's note segments.
func hasPVHNote(t *testing.T, f *elf.File) bool {
	t.Helper()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			t.Fatal(err)
		}
		for len(data) >= 12 {
			nameSz := binary.LittleEndian.Uint32(data[0:])
			descSz := binary.LittleEndian.Uint32(data[4:])
			typ := binary.LittleEndian.Uint32(data[8:])
			n := 12 + int(nameSz+3)&^3
			if n > len(data) {
				break
			}
			name := bytes.TrimRight(data[12:12+nameSz], "\x00")
			if string(name) == "Xen" && typ == 18 {
				return true
			}
			n += int(descSz+3) &^ 3
			if n > len(data) {
				break
			}
			data = data[n:]
		}
	}
	return false
}
