package container

import (
	"context"
	"io"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IO is a container process's standard streams. A nil In gives the process
// /dev/null; a nil Out or Err discards. With TTY the process gets a terminal whose
// output goes to Out and whose input is In.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	TTY      bool
	// Size is the terminal's initial size; zero leaves the runtime's default.
	Size Winsize
}

// Winsize is a terminal size in characters.
type Winsize struct{ Rows, Cols uint16 }

// Process is a started container process that the caller supervises.
type Process interface {
	// Pid is the process's id in hull's PID namespace.
	Pid() int
	// Wait blocks until the process exits and its output is drained, and returns its
	// exit status as Docker reports it: the exit code, or 128+signal.
	Wait() (int, error)
	// Signal sends sig to the process; after Wait returned it does nothing.
	Signal(sig syscall.Signal) error
	// Resize sets the terminal size of a TTY process.
	Resize(Winsize) error
}

// Runtime runs bundles in one isolation mode. The container runtime (package
// container/runc) mounts the layer disks as an overlay and runs the bundle with an
// OCI runtime binary; a microVM runtime attaches the same disks to a VM whose agent
// runs the same bundle.
//
// Every method is safe to call from another hull process than the one that started
// the container, and after that process died.
type Runtime interface {
	// Name is the runtime's name as the user selects it (runc, crun, vm).
	Name() string
	// Prepare makes c's root filesystem from c.Disks. It returns the host directory
	// holding it, from which the image's /etc/passwd is read, or "" when the root
	// filesystem is not visible on the host.
	Prepare(ctx context.Context, c *Container) (rootfs string, err error)
	// Start starts the bundle in c.Dir (config.json) and returns its process. The
	// caller must have made itself a child subreaper (Subreaper) when the runtime
	// needs one. When ctx ends before the process runs, a runtime whose start can
	// take long (a VM's boot) gives up and returns context.Cause(ctx); one whose start
	// is short (runc) may finish it.
	Start(ctx context.Context, c *Container, stdio IO) (Process, error)
	// Kill sends sig to c's process.
	Kill(ctx context.Context, c *Container, sig syscall.Signal) error
	// Exec runs p in the running container c and returns its exit status.
	Exec(ctx context.Context, c *Container, p *specs.Process, stdio IO) (int, error)
	// Delete releases everything Prepare and Start made (mounts, loop devices,
	// cgroups, runtime state). It is idempotent and works after a crash.
	Delete(ctx context.Context, c *Container) error
}

// Launcher is a Runtime that can start its process for a container before the
// container's bundle exists (Config.Launch): the runtime binary's own start-up (about
// 3 ms for runc: its Go runtime and libseccomp) then overlaps the rest of Create (the
// root filesystem's mount, the bundle) instead of following it.
type Launcher interface {
	// Launch starts the runtime for c, whose directory exists but whose bundle does
	// not yet, with stdio as its streams (never a terminal). It returns nil and no
	// error when it cannot launch c early: c is then started by Start as usual.
	Launch(ctx context.Context, c *Container, stdio IO) (Launched, error)
}

// Launched is a runtime process started by Launch that waits for its bundle.
type Launched interface {
	// Feed hands it the bundle's configuration, once c's root filesystem is
	// mounted and config.json written; the process goes on with it.
	Feed(spec *specs.Spec) error
	// Start waits for the container's process to be created, as Runtime.Start does.
	Start(ctx context.Context) (Process, error)
	// Abort stops the runtime process, when the container will not start after all.
	Abort()
}

// devNull opens /dev/null for a stream the caller did not give.
func devNull(write bool) (*os.File, error) {
	if write {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	return os.Open(os.DevNull)
}
