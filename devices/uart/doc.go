// Package uart emulates a 16550A-compatible 8250 serial port on I/O ports, the guest's
// console: the registers Linux's 8250 driver uses, transmit straight to an io.Writer,
// a bounded receive FIFO fed from an io.Reader, and THRE and RX interrupts reported as a
// line level. It must not import kvm or vmm: it raises its interrupt through a callback.
package uart
