// Package i8042 emulates the part of the PC's PS/2 controller a microVM needs: the CPU
// reset (0xFE on port 0x64, what a guest with reboot=k uses to end the VM), and just
// enough of the controller's commands (self test, configuration byte, output port) for
// Linux's i8042 driver to probe it without timeouts. No keyboard or mouse is behind it.
// It must not import kvm or vmm.
package i8042
