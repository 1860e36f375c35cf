package testenv

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// InCI reports whether the tests run in CI (CI=true), where every capability this
// machine kind has must be present.
func InCI() bool { return os.Getenv("CI") == "true" }

// missing skips the test with reason, or fails it under CI.
func missing(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true but %s: CI machines must have it", reason)
	}
	t.Skip(reason)
}

// RequireRoot asks for uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "test needs root")
	}
}

// RequireKVM opens /dev/kvm read-write, which is what the test will do.
func RequireKVM(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		missing(t, "test needs /dev/kvm: "+err.Error())
		return
	}
	f.Close()
}

// RequireTun opens /dev/net/tun.
func RequireTun(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		missing(t, "test needs /dev/net/tun: "+err.Error())
		return
	}
	f.Close()
}

// RequireLoop asks for root and the loop-control device.
func RequireLoop(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if err := unix.Access("/dev/loop-control", unix.R_OK|unix.W_OK); err != nil {
		missing(t, "test needs loop devices (/dev/loop-control): "+err.Error())
	}
}

// RequireBinary asks for a program on PATH and returns its path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "test needs "+name+" on PATH (scripts/setup installs it)")
	}
	return p
}

// RequireFile asks for a file that setup produces, such as the guest kernel.
func RequireFile(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, "test needs "+what+" at "+path+" (run scripts/setup): "+err.Error())
	}
}

// Short reports whether the long tests (the nested lab) should be left out: go test
// -short, outside CI. CI always runs them.
func Short() bool { return testing.Short() && !InCI() }
