// Package uart emulates a 16550A-compatible 8250 serial port on I/O ports, the guest's
// console. It must not import kvm or vmm: it raises its interrupt through a callback.
package uart
