package bundle

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestEtcFiles(t *testing.T) {
	host := func(p string) ([]byte, error) {
		if p == "/etc/resolv.conf" {
			return nil, errors.New("unreadable")
		}
		return []byte("host's " + p), nil
	}
	own := EtcFiles(NetworkNone, "c0ffee", host)
	if !strings.HasPrefix(string(own["/etc/hosts"]), "127.0.0.1\tlocalhost\n::1\tlocalhost") || string(own["/etc/hostname"]) != "c0ffee\n" || len(own) != 2 {
		t.Errorf("own network: %q", own)
	}
	if f := EtcFiles(NetworkNone, "", host); len(f) != 1 || f["/etc/hostname"] != nil {
		t.Errorf("no host name: %q, want /etc/hosts alone", f)
	}
	shared := EtcFiles(NetworkHost, "", host)
	if string(shared["/etc/hosts"]) != "host's /etc/hosts" || len(shared) != 1 {
		t.Errorf("host network: %q, want a copy of the host's hosts (its unreadable resolv.conf left out)", shared)
	}
}

func TestAddFiles(t *testing.T) {
	dir := t.TempDir()
	s := &specs.Spec{Mounts: []specs.Mount{{Destination: "/etc/hostname/", Type: "bind", Source: "/users/own"}}}
	err := AddFiles(dir, s, map[string][]byte{"/etc/hosts": []byte("h\n"), "/etc/hostname": []byte("n\n")})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Mounts) != 2 {
		t.Fatalf("mounts %+v: want the user's /etc/hostname kept and /etc/hosts added", s.Mounts)
	}
	m := s.Mounts[1]
	if m.Destination != "/etc/hosts" || m.Source != filepath.Join(dir, "hosts") || m.Type != "bind" {
		t.Errorf("mount %+v", m)
	}
	if b, err := os.ReadFile(m.Source); err != nil || string(b) != "h\n" {
		t.Errorf("hosts file %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hostname")); err == nil {
		t.Error("wrote hostname although the user mounts their own")
	}
}
