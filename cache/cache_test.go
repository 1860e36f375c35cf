package cache

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBootKernelIsTheBzImage(t *testing.T) {
	d := Dir(t.TempDir())
	if err := os.MkdirAll(filepath.Dir(d.Kernel()), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := d.BootKernel(); got != d.Kernel() {
		t.Errorf("without a vmlinux BootKernel = %s, want the bzImage %s", got, d.Kernel())
	}
	if err := os.WriteFile(d.KernelELF(), []byte("\x7fELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := d.BootKernel(); got != d.Kernel() {
		t.Errorf("with a vmlinux BootKernel = %s, want the bzImage %s (cache.go says why)", got, d.Kernel())
	}
}
