// Package boot loads a Linux kernel into guest memory and describes the boot vCPU's
// state at its entry. A bzImage boots by the 64-bit boot protocol (Linux
// Documentation/arch/x86/boot.rst: setup header, boot_params, identity-mapped long mode);
// an ELF32 or ELF64 kernel with a XEN_ELFNOTE_PHYS32_ENTRY note boots by the PVH ABI
// (Xen's arch-x86/hvm/start_info.h: hvm_start_info, 32-bit protected mode). Load also
// writes the command line, the initrd, the e820 memory map and an Intel MP 1.4 table that
// lists the CPUs and routes ISA IRQs through the IOAPIC, for kernels without ACPI.
//
// Load returns an Entry (registers, control registers, segments) that the VMM copies into
// its vCPU; docs/boot.md has the guest physical layout. Kernel images are untrusted: every
// header field is checked against the file and against guest memory, and a bad image is
// an error wrapping ErrFormat, ErrBadImage or ErrNoFit, never a panic.
//
// It must import only memory: never kvm, virtio or vmm.
package boot
