// Package i8042 emulates the one part of the PS/2 controller a microVM needs: the CPU
// reset command (0xFE on port 0x64) that a guest with reboot=k uses to end the VM.
// It must not import kvm or vmm.
package i8042
