// Package boot loads a Linux kernel into guest memory by the x86 boot protocol
// (bzImage, Documentation/x86/boot.rst) or the PVH entry (ELF vmlinux with a
// XEN_ELFNOTE_PHYS32_ENTRY note), and writes boot_params, the command line, the initrd,
// the e820 map and the MP table.
//
// It parses untrusted kernel images and must not import kvm, virtio or vmm.
package boot
