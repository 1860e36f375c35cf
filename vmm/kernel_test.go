package vmm

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// bzImageHeader is the start of a bzImage: boot protocol signature "HdrS" at 0x202.
func bzImageHeader() []byte {
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	return b
}

// note is one ELF note owned by name.
func note(name string, typ uint32, desc []byte) []byte {
	pad := func(b []byte) []byte { return append(b, make([]byte, (4-len(b)%4)%4)...) }
	h := binary.LittleEndian.AppendUint32(nil, uint32(len(name)+1))
	h = binary.LittleEndian.AppendUint32(h, uint32(len(desc)))
	h = binary.LittleEndian.AppendUint32(h, typ)
	return append(append(h, pad(append([]byte(name), 0))...), pad(desc)...)
}

func TestIsLinux(t *testing.T) {
	tests := []struct {
		name string
		file []byte
		want bool
	}{
		{"bzImage", bzImageHeader(), true},
		{"PVH test guest", pvhELF(spinGuest), false},
		{"empty", nil, false},
		{"short", []byte("MZ"), false},
		{"garbage ELF", []byte("\x7fELF\x01\x01\x01garbage"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := isLinux(bytes.NewReader(tc.file))
			if err != nil || got != tc.want {
				t.Fatalf("isLinux = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestNotesHave(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name  string
		notes []byte
		want  bool
	}{
		{"linux after gnu", append(note("GNU", 3, make([]byte, 20)), note("Linux", 0x100, []byte{0})...), true},
		{"xen only", note("Xen", 18, []byte{0, 0, 0x10, 0}), false},
		{"truncated name", note("Linux", 1, nil)[:14], false},
		{"huge descsz", append(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 4), 0xffffffff), 1), "Xen\x00"...), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := notesHave(tc.notes, le, "Linux"); got != tc.want {
				t.Fatalf("notesHave = %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzIsLinux(f *testing.F) {
	f.Add(bzImageHeader())
	f.Add(pvhELF(printGuest))
	f.Add(note("Linux", 1, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		isLinux(bytes.NewReader(b))
		notesHave(b, binary.LittleEndian, "Linux")
	})
}
