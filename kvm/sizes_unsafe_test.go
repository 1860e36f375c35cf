package kvm

import (
	"testing"
	"unsafe"
)

// TestMirroredSizes checks each mirrored struct against <linux/kvm.h> and that the
// ioctl numbers carry those sizes.
func TestMirroredSizes(t *testing.T) {
	ioc := func(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 0xae<<8 | nr }
	const w, r = 1, 2
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_msr_entry", unsafe.Sizeof(MSR{}), 16},
		{"kvm_lapic_state", unsafe.Sizeof(LAPIC{}), 1024},
		{"kvm_userspace_memory_region", unsafe.Sizeof(memoryRegion{}), 32},
		{"kvm_irq_level", unsafe.Sizeof(irqLevel{}), 8},
		{"kvm_irqfd", unsafe.Sizeof(irqfd{}), 32},
		{"kvm_coalesced_mmio_zone", unsafe.Sizeof(zone{}), 16},
		{"kvm_pit_config", unsafe.Sizeof(pitConfig{}), 64},
		{"kvm_ioeventfd", unsafe.Sizeof(ioeventfd{}), 64},
		{"kvm_cpuid2 header", unsafe.Offsetof(cpuid{}.entries), 8},
		{"kvm_msrs header", unsafe.Offsetof(msrs{}.entries), 8},
		{"KVM_GET_SUPPORTED_CPUID", ioGetSupportedCPUID, ioc(w|r, 0x05, 8)},
		{"KVM_SET_USER_MEMORY_REGION", ioSetUserMemoryRegion, ioc(w, 0x46, 32)},
		{"KVM_SET_IDENTITY_MAP_ADDR", ioSetIdentityMapAddr, ioc(w, 0x48, 8)},
		{"KVM_IRQ_LINE", ioIRQLine, ioc(w, 0x61, 8)},
		{"KVM_IRQFD", ioIRQFD, ioc(w, 0x76, 32)},
		{"KVM_CREATE_PIT2", ioCreatePIT2, ioc(w, 0x77, 64)},
		{"KVM_IOEVENTFD", ioIOEventFD, ioc(w, 0x79, 64)},
		{"KVM_GET_REGS", ioGetRegs, ioc(r, 0x81, 144)},
		{"KVM_SET_REGS", ioSetRegs, ioc(w, 0x82, 144)},
		{"KVM_GET_SREGS", ioGetSregs, ioc(r, 0x83, 312)},
		{"KVM_SET_SREGS", ioSetSregs, ioc(w, 0x84, 312)},
		{"KVM_GET_MSRS", ioGetMSRs, ioc(w|r, 0x88, 8)},
		{"KVM_SET_MSRS", ioSetMSRs, ioc(w, 0x89, 8)},
		{"KVM_GET_LAPIC", ioGetLAPIC, ioc(r, 0x8e, 1024)},
		{"KVM_SET_LAPIC", ioSetLAPIC, ioc(w, 0x8f, 1024)},
		{"KVM_SET_CPUID2", ioSetCPUID2, ioc(w, 0x90, 8)},
		{"KVM_GET_MP_STATE", ioGetMPState, ioc(r, 0x98, 4)},
		{"KVM_RUN", ioRun, ioc(0, 0x80, 0)},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}
