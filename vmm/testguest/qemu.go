package testguest

import "fmt"

// QEMUDisk is a raw disk image for QEMUArgs.
type QEMUDisk struct {
	Path     string
	ReadOnly bool
	ID       string // virtio-blk serial, at most 20 bytes
}

// QEMUArgs returns the arguments of qemu-system-x86_64 that boot kernel (a test guest)
// on QEMU's microvm machine with KVM, the serial console on stdio, the isa-debug-exit
// port at 0xf4 and the disks as modern virtio-mmio block devices: the reference VMM the
// guest is checked against and the peer benchmarks compare hull with.
func QEMUArgs(kernel, cmdline string, disks ...QEMUDisk) []string {
	a := []string{
		"-M", "microvm,x-option-roms=off,isa-serial=on,rtc=off", "-enable-kvm",
		"-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
		"-kernel", kernel, "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
		"-global", "virtio-mmio.force-legacy=false",
	}
	if cmdline != "" {
		a = append(a, "-append", cmdline)
	}
	for i, d := range disks {
		drive := fmt.Sprintf("id=d%d,file=%s,format=raw,if=none", i, d.Path)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		dev := fmt.Sprintf("virtio-blk-device,drive=d%d", i)
		if d.ID != "" {
			dev += ",serial=" + d.ID
		}
		a = append(a, "-drive", drive, "-device", dev)
	}
	return a
}
