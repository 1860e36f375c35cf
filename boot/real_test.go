package boot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/memory"
)

// Real kernels from the cache that scripts/setup fills (HULL_CACHE overrides the place).
func cachePath(parts ...string) string {
	dir := os.Getenv("HULL_CACHE")
	if dir == "" {
		dir = "/var/cache/hull"
	}
	return filepath.Join(append([]string{dir}, parts...)...)
}

func openKernel(t testing.TB, path, what string) (*os.File, int64) {
	t.Helper()
	testenv.RequireFile(t, path, what)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

func guestRAM(t testing.TB, size uint64) *memory.Guest {
	t.Helper()
	mem, err := memory.New(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	return mem
}

// checkRealBzImage loads a real bzImage and checks the result against the image's own
// header bytes, read here independently of the loader.
func checkRealBzImage(t *testing.T, path, what string) []byte {
	t.Helper()
	f, size := openKernel(t, path, what)
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mem := guestRAM(t, 256*mib)
	initrd := bytes.Repeat([]byte{7}, 3*mib+123)
	e, err := Load(mem, Params{Kernel: f, KernelSize: size, Initrd: bytes.NewReader(initrd), InitrdSize: int64(len(initrd)),
		Cmdline: "console=ttyS0 panic=-1", CPUs: 4})
	if err != nil {
		t.Fatalf("Load %s: %v", path, err)
	}
	le := binary.LittleEndian
	sects := int(img[0x1f1])
	if sects == 0 {
		sects = 4
	}
	setupEnd := (sects + 1) * 512
	align := uint64(le.Uint32(img[0x230:]))
	pref := le.Uint64(img[0x258:])
	runtime := pref // boot.rst, init_size: a non-relocatable kernel runs at pref_address
	if img[0x234] != 0 {
		runtime = max((0x100000+align-1)&^(align-1), pref)
	}
	zp := read(t, mem, ZeroPageAddr, bpSize)
	hdrEnd := 0x202 + int(img[0x201])
	got := []struct {
		name      string
		got, want uint64
	}{
		{"mode", uint64(e.Mode), uint64(Long64)},
		{"RIP", e.RIP, 0x100200},
		{"HdrS", uint64(le.Uint32(img[0x202:])), 0x53726448},
		{"XLF_KERNEL_64", uint64(le.Uint16(img[0x236:]) & 1), 1},
		{"kernel end", uint64(e.KernelEnd), runtime + uint64(le.Uint32(img[0x260:]))},
		{"initrd_addr_max respected", min(uint64(e.InitrdAddr)+e.InitrdSize, uint64(le.Uint32(img[0x22c:]))+1), uint64(e.InitrdAddr) + e.InitrdSize},
		{"type_of_loader", uint64(zp[0x210]), 0xff},
		{"cmd_line_ptr", uint64(le.Uint32(zp[0x228:])), uint64(CmdlineAddr)},
		{"ramdisk_size", uint64(le.Uint32(zp[0x21c:])), uint64(len(initrd))},
	}
	for _, g := range got {
		if g.got != g.want {
			t.Errorf("%s = %#x, want %#x", g.name, g.got, g.want)
		}
	}
	if v := le.Uint16(img[0x206:]); v < 0x020c {
		t.Errorf("boot protocol %#x", v)
	}
	// The setup header is copied except the fields the loader owns.
	owned := map[int]bool{}
	for _, r := range [][2]int{{0x1fa, 2}, {0x210, 2}, {0x214, 4}, {0x218, 8}, {0x224, 2}, {0x228, 4}} {
		for i := range r[1] {
			owned[r[0]+i] = true
		}
	}
	for i := 0x1f1; i < hdrEnd; i++ {
		if !owned[i] && zp[i] != img[i] && !(i == 0x211 && zp[i] == img[i]|canUseHeap) {
			t.Errorf("boot_params byte %#x = %#x, image has %#x", i, zp[i], img[i])
		}
	}
	sys := min(int(le.Uint32(img[0x1f4:]))*16, len(img)-setupEnd)
	for _, off := range []int{0, sys / 2 &^ 0xfff, sys - 4096} {
		if !bytes.Equal(read(t, mem, KernelAddr+memory.Addr(off), 4096), img[setupEnd+off:setupEnd+off+4096]) {
			t.Errorf("kernel bytes at +%#x differ from the image", off)
		}
	}
	if !bytes.Equal(read(t, mem, e.InitrdAddr, e.InitrdSize), initrd) {
		t.Error("initrd differs")
	}
	return img
}

func TestDebianBzImage(t *testing.T) {
	path := cachePath("lab", "vmlinuz")
	img := checkRealBzImage(t, path, "the Debian lab kernel")
	// The version string the header points at (kernel_version + 0x200) is what file(1)
	// reports.
	fileBin := testenv.RequireBinary(t, "file")
	out, err := exec.Command(fileBin, "-b", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`version (\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("file says %q: no version", out)
	}
	off := int(binary.LittleEndian.Uint16(img[0x20e:])) + 0x200
	ver, _, _ := bytes.Cut(img[off:], []byte(" "))
	if string(ver) != string(m[1]) {
		t.Errorf("header version string %q, file(1) says %q", ver, m[1])
	}
}

func TestHullBzImage(t *testing.T) {
	checkRealBzImage(t, cachePath("kernel", "current", "bzImage"), "the hull guest kernel (make kernel)")
}

func TestHullVmlinuxPVH(t *testing.T) {
	path := cachePath("kernel", "current", "vmlinux")
	f, size := openKernel(t, path, "the hull guest kernel's vmlinux (make kernel)")
	readelf := testenv.RequireBinary(t, "readelf")
	out, err := exec.Command(readelf, "-nW", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	// "  Xen  0x00000008  Unknown note type: (0x00000012)  description data: 00 06 00 01 ..."
	m := regexp.MustCompile(`(?m)^\s*Xen\s.*\(0x00000012\)\s+description data: ([0-9a-f ]+)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("readelf finds no PVH entry note in %s", path)
	}
	var want uint64
	for i, h := range strings.Fields(string(m[1])) {
		b, err := strconv.ParseUint(h, 16, 8)
		if err != nil {
			t.Fatal(err)
		}
		want |= b << (8 * i)
	}
	mem := guestRAM(t, 256*mib)
	e, err := Load(mem, Params{Kernel: f, KernelSize: size, Initrd: bytes.NewReader([]byte("rd")), InitrdSize: 2, CPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if e.Mode != PVH32 || e.RIP != want {
		t.Fatalf("mode %v entry %#x, readelf says %#x", e.Mode, e.RIP, want)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		n := min(p.Filesz, 4096)
		want := make([]byte, n)
		if _, err := f.ReadAt(want, int64(p.Off)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(read(t, mem, memory.Addr(p.Paddr), n), want) {
			t.Errorf("segment at %#x not loaded", p.Paddr)
		}
		if end := memory.Addr(p.Paddr + p.Memsz); end > e.KernelEnd || e.InitrdAddr < end {
			t.Errorf("segment ends at %#x past the kernel end %#x or the initrd at %#x", uint64(end), uint64(e.KernelEnd), uint64(e.InitrdAddr))
		}
	}
}

// BenchmarkLoad loads the Debian bzImage (about 8 MB) into 256 MiB of fresh guest memory.
func BenchmarkLoad(b *testing.B) {
	f, size := openKernel(b, cachePath("lab", "vmlinuz"), "the Debian lab kernel")
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		mem, err := memory.New(256 * mib)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Load(mem, Params{Kernel: f, KernelSize: size, Cmdline: "console=ttyS0", CPUs: 2}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		mem.Close()
		b.StartTimer()
	}
}
