package boot

import (
	"bytes"
	"testing"
)

// FuzzLoad feeds Load arbitrary kernel images, seeded with valid bzImages and PVH ELF
// kernels of both classes. Load must return an error or an entry whose state lies in
// guest memory; it must never panic.
func FuzzLoad(f *testing.F) {
	f.Add(makeBzImage(bzDefaults()))
	nonReloc := bzDefaults()
	nonReloc.relocatable, nonReloc.setupSects = 0, 0
	f.Add(makeBzImage(nonReloc))
	f.Add(makeELF(pvhDefaults(elfClass64)))
	f.Add(makeELF(pvhDefaults(elfClass32)))
	aligned := pvhDefaults(elfClass64)
	aligned.noteAlgn = 8
	f.Add(makeELF(aligned))
	mem := newMem(f, 32*mib)
	initrd := []byte("initrd")
	f.Fuzz(func(t *testing.T, img []byte) {
		e, err := Load(mem, Params{
			Kernel: bytes.NewReader(img), KernelSize: int64(len(img)),
			Initrd: bytes.NewReader(initrd), InitrdSize: int64(len(initrd)),
			Cmdline: "console=ttyS0", CPUs: 4,
		})
		if err != nil {
			return
		}
		if _, err := mem.Slice(0, e.RIP); err != nil {
			t.Fatalf("entry %#x outside guest memory", e.RIP)
		}
		if e.InitrdAddr < e.KernelEnd || uint64(e.InitrdAddr)+e.InitrdSize > mem.Size() {
			t.Fatalf("initrd at %#x+%d overlaps the kernel (end %#x) or leaves memory", uint64(e.InitrdAddr), e.InitrdSize, uint64(e.KernelEnd))
		}
	})
}

// FuzzNotes feeds the PT_NOTE parser arbitrary note segments: it must return an entry
// below 4 GiB, nothing, or an error.
func FuzzNotes(f *testing.F) {
	img := makeELF(pvhDefaults(elfClass64))
	f.Add(img[64+3*56:64+3*56+52], uint64(4)) // the Linux and Xen notes makeELF writes
	f.Add([]byte{4, 0, 0, 0, 4, 0, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0, 0, 0, 0x10, 0}, uint64(4))
	f.Add([]byte{}, uint64(8))
	f.Fuzz(func(t *testing.T, notes []byte, palign uint64) {
		entry, err := pvhEntry(notes, palign)
		if err == nil && entry > 1<<32-1 {
			t.Fatalf("entry %#x above 4 GiB", entry)
		}
	})
}
