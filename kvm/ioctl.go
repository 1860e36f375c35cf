package kvm

import "strconv"

// Ioctl request numbers, from <linux/kvm.h>, built the way <asm-generic/ioctl.h> builds
// them (direction<<30 | size<<16 | 0xAE<<8 | nr). sizes_unsafe_test.go checks the sizes
// of the structs they carry.
const (
	ioGetAPIVersion           = 0xae00
	ioCreateVM                = 0xae01
	ioCheckExtension          = 0xae03
	ioGetVCPUMmapSize         = 0xae04
	ioGetSupportedCPUID       = 0xc008ae05 // _IOWR(0x05, struct kvm_cpuid2)
	ioCreateVCPU              = 0xae41
	ioSetUserMemoryRegion     = 0x4020ae46 // _IOW(0x46, struct kvm_userspace_memory_region)
	ioSetTSSAddr              = 0xae47
	ioSetIdentityMapAddr      = 0x4008ae48 // _IOW(0x48, __u64)
	ioCreateIRQChip           = 0xae60
	ioIRQLine                 = 0x4008ae61 // _IOW(0x61, struct kvm_irq_level)
	ioIRQFD                   = 0x4020ae76 // _IOW(0x76, struct kvm_irqfd)
	ioRegisterCoalescedMMIO   = 0x4010ae67 // _IOW(0x67, struct kvm_coalesced_mmio_zone)
	ioUnregisterCoalescedMMIO = 0x4010ae68 // _IOW(0x68, struct kvm_coalesced_mmio_zone)
	ioCreatePIT2              = 0x4040ae77 // _IOW(0x77, struct kvm_pit_config)
	ioIOEventFD               = 0x4040ae79 // _IOW(0x79, struct kvm_ioeventfd)
	ioRun                     = 0xae80
	ioGetRegs                 = 0x8090ae81 // _IOR(0x81, struct kvm_regs)
	ioSetRegs                 = 0x4090ae82 // _IOW(0x82, struct kvm_regs)
	ioGetSregs                = 0x8138ae83 // _IOR(0x83, struct kvm_sregs)
	ioSetSregs                = 0x4138ae84 // _IOW(0x84, struct kvm_sregs)
	ioGetMSRs                 = 0xc008ae88 // _IOWR(0x88, struct kvm_msrs)
	ioSetMSRs                 = 0x4008ae89 // _IOW(0x89, struct kvm_msrs)
	ioGetLAPIC                = 0x8400ae8e // _IOR(0x8e, struct kvm_lapic_state)
	ioSetLAPIC                = 0x4400ae8f // _IOW(0x8f, struct kvm_lapic_state)
	ioSetCPUID2               = 0x4008ae90 // _IOW(0x90, struct kvm_cpuid2)
	ioGetMPState              = 0x8004ae98 // _IOR(0x98, struct kvm_mp_state)
	ioGetTSCKHz               = 0xaea3
)

// APIVersion is the only KVM API version there has ever been (KVM_GET_API_VERSION).
const APIVersion = 12

// Cap is a KVM capability for KVM_CHECK_EXTENSION.
type Cap int

// Capabilities hull uses, from <linux/kvm.h>.
const (
	CapIRQChip            Cap = 0
	CapHLT                Cap = 1
	CapUserMemory         Cap = 3
	CapSetTSSAddr         Cap = 4
	CapExtCPUID           Cap = 7
	CapNrVCPUs            Cap = 9
	CapCoalescedMMIO      Cap = 15 // answers the ring's page offset in the vCPU mapping
	CapIRQFD              Cap = 32
	CapPIT2               Cap = 33
	CapIOEventFD          Cap = 36
	CapSetIdentityMapAddr Cap = 37
	CapGetTSCKHz          Cap = 61
	CapMaxVCPUs           Cap = 66
	CapTSCDeadlineTimer   Cap = 72
	CapImmediateExit      Cap = 136
	CapCoalescedPIO       Cap = 162
)

func (c Cap) String() string {
	switch c {
	case CapIRQChip:
		return "KVM_CAP_IRQCHIP"
	case CapHLT:
		return "KVM_CAP_HLT"
	case CapUserMemory:
		return "KVM_CAP_USER_MEMORY"
	case CapSetTSSAddr:
		return "KVM_CAP_SET_TSS_ADDR"
	case CapExtCPUID:
		return "KVM_CAP_EXT_CPUID"
	case CapNrVCPUs:
		return "KVM_CAP_NR_VCPUS"
	case CapIRQFD:
		return "KVM_CAP_IRQFD"
	case CapPIT2:
		return "KVM_CAP_PIT2"
	case CapIOEventFD:
		return "KVM_CAP_IOEVENTFD"
	case CapSetIdentityMapAddr:
		return "KVM_CAP_SET_IDENTITY_MAP_ADDR"
	case CapGetTSCKHz:
		return "KVM_CAP_GET_TSC_KHZ"
	case CapMaxVCPUs:
		return "KVM_CAP_MAX_VCPUS"
	case CapTSCDeadlineTimer:
		return "KVM_CAP_TSC_DEADLINE_TIMER"
	case CapImmediateExit:
		return "KVM_CAP_IMMEDIATE_EXIT"
	}
	return "KVM_CAP(" + strconv.Itoa(int(c)) + ")"
}
