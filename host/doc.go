// Package host probes what this host can do for each isolation mode: the kind of KVM
// (none, hardware VT-x/AMD-V, or PVM), the cgroup layout, filesystems, loop devices, tun,
// OCI runtimes and QEMU. hull doctor prints it; --isolation auto decides by it.
//
// It only reads the host; it must not import other hull packages except cache.
package host
