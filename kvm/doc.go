// Package kvm is a thin, typed layer over the Linux KVM ioctl API: the system
// (/dev/kvm), a VM, its vCPUs and their exits, and capability checks.
//
// It must not import anything of hull's: it knows nothing of devices, boot or memory
// layout. Mirrored kernel structs say which struct they mirror.
package kvm
