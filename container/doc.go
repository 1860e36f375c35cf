// Package container is the container lifecycle shared by both isolation modes: state on
// disk, create, start, wait, kill, remove, logs. The modes plug in behind a small
// Runtime interface: an OCI runtime binary (runc, crun; package container/runc) for
// shared-kernel containers, and a microVM for VM isolation (package container/microvm).
//
// Every container lives in ROOT/containers/ID:
//
//	config.json     the OCI runtime-spec bundle (package bundle), rootfs/ beside it
//	state.json      the container's record (State), replaced atomically
//	container.log   the detached container's output
//	upper, work     the overlay's writable layer (container mode)
//	l/N             layer disk mount points, only where the layers cannot be
//	                detached mounts (MountRootfs)
//	init.pid, runtime.log  the OCI runtime's pid file and JSON log
//	shim.log        the shim's own messages
//
// The directory itself is flocked while the container is changed (no lock file: see
// Container.saveNew on what each new inode costs).
//
// A container is supervised by one hull process: hull run in the foreground, or the
// shim (Manager.Shim, Supervise) that hull run -d and hull start leave behind. The
// supervisor starts it, forwards signals and terminal resizes, and records its exit.
//
// A container whose supervising hull process died is detected by its process's
// liveness (pid and start time), so ps and rm are right after a kill -9 of any hull
// process, and rm reclaims whatever the dead process left (mounts, loop devices,
// cgroups, runtime state).
//
// It must not import the CLI (cmd/), vmm or guest.
package container
