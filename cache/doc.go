// Package cache knows where setup (scripts/setup) leaves what hull needs at run time:
// the guest kernel, the initramfs, the nested lab's kernel and modules, and the embedded
// busybox image. It only names paths and checks they exist; it imports nothing of hull's.
package cache
