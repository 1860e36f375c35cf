// Package lab is the nested KVM lab: it boots an L1 Linux under QEMU's software
// emulation with AMD-V (-cpu qemu64,+svm), loads kvm and kvm-amd there, copies in a
// payload (hull binaries, guest kernel, initramfs, disk images), runs a command and
// returns its output and exit status. It is how VM mode is tested on hosts whose KVM
// cannot boot Linux (PVM).
//
// Tests and hull bench use it; it must not import vmm, guest or container.
package lab
