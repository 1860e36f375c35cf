// Package lab is the nested KVM lab: it boots an L1 Linux under QEMU's software
// emulation of a CPU with AMD-V (-cpu max, or qemu64,+svm), loads kvm and kvm-amd there
// (and erofs, overlay and loop, for container mode), copies in a payload (hull binaries,
// guest kernel, initramfs, disk images), runs a shell script and returns its output and
// exit status, split into steps when the script frames its scenarios with `step NAME
// CMD...`. It is how VM mode is tested on hosts whose KVM cannot boot Linux (PVM), and
// container mode on a cgroup setup the host does not have. See docs/lab.md.
//
// Tests and hull bench use it; it must not import vmm, guest or container.
package lab
