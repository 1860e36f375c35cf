package vmm

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// maxNotes caps how much of an ELF's notes LinuxKernel reads.
const maxNotes = 64 << 10

// LinuxKernel reports whether the file at path is a Linux kernel: a bzImage (the
// "HdrS" boot protocol signature at 0x202) or an ELF carrying a note owned by "Linux".
// A freestanding test guest is neither. The CLI uses it to warn on PVM hosts, where
// only PVM-built Linux kernels boot.
func LinuxKernel(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open kernel: %w", err)
	}
	defer f.Close()
	return isLinux(f)
}

func isLinux(r io.ReaderAt) (bool, error) {
	var hdr [0x206]byte
	n, err := r.ReadAt(hdr[:], 0)
	if n >= 4 && string(hdr[:4]) == elf.ELFMAG {
		return elfHasLinuxNote(r), nil
	}
	if n == len(hdr) && string(hdr[0x202:0x206]) == "HdrS" {
		return true, nil
	}
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("read kernel: %w", err)
	}
	return false, nil
}

// elfHasLinuxNote walks the PT_NOTE segments (ELF gABI, "Note Section"); a malformed
// file simply has no Linux note.
func elfHasLinuxNote(r io.ReaderAt) bool {
	f, err := elf.NewFile(r)
	if err != nil {
		return false
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz == 0 {
			continue
		}
		b := make([]byte, min(p.Filesz, maxNotes))
		if _, err := p.ReadAt(b, 0); err != nil && err != io.EOF {
			continue
		}
		if notesHave(b, f.ByteOrder, "Linux") {
			return true
		}
	}
	return false
}

// notesHave reports whether the note list b has a note owned by name.
func notesHave(b []byte, bo binary.ByteOrder, name string) bool {
	align := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for len(b) >= 12 {
		namesz, descsz := uint64(bo.Uint32(b[0:])), uint64(bo.Uint32(b[4:]))
		b = b[12:]
		if align(namesz) > uint64(len(b)) {
			return false
		}
		if bytes.Equal(bytes.TrimRight(b[:namesz], "\x00"), []byte(name)) {
			return true
		}
		b = b[align(namesz):]
		if align(descsz) > uint64(len(b)) {
			return false
		}
		b = b[align(descsz):]
	}
	return false
}
