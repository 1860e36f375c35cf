package microvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullvm/hull/bundle"
	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/kvm"
)

// TestStartGivenUp boots hull's guest kernel where it cannot come up (a PVM host: these
// build machines) and gives up on the start, as Ctrl-C or `hull stop` does: Start
// returns the reason at once instead of waiting for an agent that never answers, and
// the VM, its sockets and its thread are gone.
func TestStartGivenUp(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireKVM(t)
	if !kvm.IsPVM() {
		t.Skip("the guest kernel boots on this host's KVM: there is no hung start to give up on")
	}
	d := cache.Dir(cache.DefaultDir)
	if v := os.Getenv("HULL_CACHE"); v != "" {
		d = cache.Dir(v)
	}
	testenv.RequireFile(t, d.Kernel(), "hull's guest kernel")
	testenv.RequireFile(t, d.Initramfs(), "hull's initramfs")
	r := &Runtime{Kernel: d.Kernel(), Initrd: d.Initramfs(), Tools: tools(t), ScratchSize: 64 << 20}
	dir := t.TempDir()
	c := &container.Container{Dir: filepath.Join(dir, "c"), State: container.State{ID: strings.Repeat("b", 64), Name: "hung"}}
	if err := os.Mkdir(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Version: bundle.Version, Process: &specs.Process{Args: []string{"true"}, Cwd: "/"}, Root: &specs.Root{Path: bundle.RootfsDir}}
	if err := bundle.Write(c.Dir, spec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.Prepare(ctx, c); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	gaveUp := errors.New("start given up on by the test")
	sctx, cancel := context.WithCancelCause(ctx)
	console := filepath.Join(c.Dir, consoleFile)
	go func() {
		// Give up once the VM runs: its console log exists from the boot on.
		for {
			if _, err := os.Stat(console); err == nil {
				cancel(gaveUp)
				return
			}
			if sctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	p, err := r.Start(sctx, c, container.IO{})
	cancel(nil)
	if err == nil {
		p.Signal(9)
		p.Wait()
		t.Fatal("Start succeeded on a host where the guest kernel cannot boot")
	}
	if !errors.Is(err, gaveUp) {
		t.Fatalf("Start = %v, want the reason it was given up on", err)
	}
	if _, err := os.Stat(sockPath(c, vsockFile)); err == nil {
		t.Error("the VM's vsock socket is left after the start was given up on")
	}
	if err := r.Delete(ctx, c); err != nil {
		t.Errorf("Delete: %v", err)
	}
}
