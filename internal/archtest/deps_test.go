// Package archtest keeps hull's dependency direction one-way (STYLE.md habit 1): each
// package below may not import the packages listed against it.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/hullvm/hull/"

func TestDependencyDirection(t *testing.T) {
	forbidden := []struct {
		pkg    string
		banned []string
	}{
		{"kvm", []string{"memory", "boot", "virtio", "vmm", "devices", "guest", "images", "bundle", "container", "cmd"}},
		{"memory", []string{"kvm", "virtio", "vmm", "boot"}},
		{"boot", []string{"kvm", "virtio", "vmm"}},
		{"virtio/...", []string{"kvm", "vmm", "boot"}},
		{"devices/...", []string{"kvm", "vmm", "virtio"}},
		{"vmm", []string{"cmd", "images", "container", "bundle"}},
		{"guest/...", []string{"cmd", "container", "vmm", "kvm", "images"}},
		{"images/...", []string{"vmm", "guest", "container", "kvm", "virtio", "cmd"}},
		{"bundle", []string{"vmm", "guest", "container", "kvm", "virtio", "cmd"}},
		{"container/...", []string{"cmd"}},
		{"host", []string{"vmm", "kvm", "virtio", "guest", "images", "container", "cmd"}},
		{"lab", []string{"vmm", "guest", "container", "cmd"}},
		{"lab/labtest", []string{"vmm", "guest", "container", "cmd"}},
		{"cache", []string{"kvm", "memory", "vmm", "virtio", "guest", "images", "container", "host", "lab", "cmd"}},
		// The binaries that start VMs stay free of the plotting library (hull-chart has it).
		{"cmd/hull", []string{"bench/chart"}},
		{"cmd/hull-vmm", []string{"images", "container", "bundle", "guest", "bench", "cmd/hull"}},
	}
	for _, f := range forbidden {
		t.Run(f.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/hullvm/hull/"+f.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list %s: %v\n%s", f.pkg, err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				rel, ok := strings.CutPrefix(dep, mod)
				if !ok {
					continue
				}
				for _, b := range f.banned {
					if rel == b || strings.HasPrefix(rel, b+"/") {
						t.Errorf("%s imports %s", f.pkg, dep)
					}
				}
			}
		})
	}
}

// TestCLIHasNoPlottingLibrary: gonum plot's package initializer parses its embedded
// fonts (4.5 MiB of page faults) in every process of a binary that links it, so only
// hull-chart may.
func TestCLIHasNoPlottingLibrary(t *testing.T) {
	for _, bin := range []string{"cmd/hull", "cmd/hull-vmm"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", mod+bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", bin, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "gonum.org/v1/plot") {
				t.Errorf("%s links %s", bin, dep)
			}
		}
	}
}
