package main

import (
	"bytes"
	"slices"
	"testing"
)

func TestLabProgressPassesOnlyBenchLines(t *testing.T) {
	var b bytes.Buffer
	p := labProgress{&b}
	for _, l := range []string{"[    1.2] kvm: loaded\n", "bench: round 1/2: hull-vm\n", "HULL-LAB-INIT-x\n", "bench: density: 2 idle hull-vm instances\n"} {
		if n, err := p.Write([]byte(l)); n != len(l) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", l, n, err)
		}
	}
	want := "bench: lab: round 1/2: hull-vm\nbench: lab: density: 2 idle hull-vm instances\n"
	if b.String() != want {
		t.Fatalf("passed on %q, want %q", b.String(), want)
	}
}

func TestWithout(t *testing.T) {
	got := without([]string{"runc", "docker", "qemu", "gokvm"}, "qemu", "gokvm")
	if !slices.Equal(got, []string{"runc", "docker"}) {
		t.Fatalf("without = %v", got)
	}
	if got := without([]string{"vm"}, "vm"); len(got) != 0 {
		t.Fatalf("without = %v, want none", got)
	}
}
