/*
 * PVH entry of the hull test guest (xen/include/public/arch-x86/hvm/start_info.h and the
 * x86 PVH boot ABI): the VMM enters at _start in 32-bit protected mode, paging off, flat
 * code and data segments, EBX holding the physical address of struct hvm_start_info.
 */
	.section .note.Xen, "a"
	.balign 4
	.long 4			/* namesz: "Xen\0" */
	.long 4			/* descsz: a 32-bit entry address */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long _start

	.text
	.code32
	.globl _start
_start:
	cli
	cld
	movl $stack_top, %esp
	pushl %ebx		/* guest_main(start_info) */
	call guest_main
	/* guest_main does not return; if it does, fall into triple_fault. */

/* triple_fault loads an empty IDT and traps: the CPU shuts down, which every VMM reports. */
	.globl triple_fault
triple_fault:
	lidt empty_idt
	int3
1:	hlt
	jmp 1b

	.section .rodata
	.balign 8
empty_idt:
	.word 0
	.long 0

	.bss
	.balign 16
	.skip 8192
stack_top:
