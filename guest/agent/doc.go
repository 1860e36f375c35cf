// Package agent is hull-init, PID 1 of the microVM guest: it mounts the layer disks
// (found by virtio-blk serial) as an overlay root, applies the OCI process spec, runs the
// process through an exec stage (the agent re-executed), forwards signals and stdio over
// vsock, reaps orphans, reports the exit status and ends the VM. While that process
// runs, further vsock sessions each run another process in the same root (exec); one
// reaper owns every wait4 and hands each status to its session. Its paths and mounter
// are fields, so tests run it as an ordinary process in a private mount namespace.
//
// It runs inside the guest: it must not import vmm, kvm, images or container.
package agent
