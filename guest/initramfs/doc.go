// Package initramfs builds the guest initramfs with u-root's mkuimage: hull-init (built
// static) as /init and, for the debug shell, u-root core commands in /bbin. The archive is
// reproducible and cached by content hash ($HULL_CACHE/initramfs/<hash>.cpio.gz, with
// current.cpio.gz pointing at the latest build).
//
// It must not import vmm, guest/agent or container.
package initramfs
