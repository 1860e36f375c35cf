// Package initramfs builds the guest initramfs with u-root's mkuimage: hull-init as
// /init, and u-root core commands for the debug shell. Output is cached by content hash.
//
// It must not import vmm or container.
package initramfs
