package kvm

// Regs are a vCPU's general registers.
//
// mirrors struct kvm_regs (arch/x86/include/uapi/asm/kvm.h)
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// Segment is a segment register with its hidden descriptor cache.
//
// mirrors struct kvm_segment
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable is a descriptor table register (GDTR, IDTR).
//
// mirrors struct kvm_dtable
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs are a vCPU's special registers.
//
// mirrors struct kvm_sregs
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [4]uint64
}

// CPUIDEntry is one CPUID leaf (Function) and subleaf (Index).
//
// mirrors struct kvm_cpuid_entry2
type CPUIDEntry struct {
	Function           uint32
	Index              uint32
	Flags              uint32
	EAX, EBX, ECX, EDX uint32
	_                  [3]uint32
}

// CPUID entry flags.
const (
	CPUIDFlagSignificantIndex = 1 << 0 // KVM_CPUID_FLAG_SIGNIFCANT_INDEX: Index matters
)

// maxCPUID is how many entries KVM_GET_SUPPORTED_CPUID may return; hosts return about 60.
const maxCPUID = 256

// cpuid mirrors struct kvm_cpuid2 with room for maxCPUID entries.
type cpuid struct {
	n       uint32
	_       uint32
	entries [maxCPUID]CPUIDEntry
}

// MSR is one model-specific register and its value.
//
// mirrors struct kvm_msr_entry
type MSR struct {
	Index uint32
	_     uint32
	Data  uint64
}

// maxMSRs caps one SetMSRs call.
const maxMSRs = 64

// msrs mirrors struct kvm_msrs with room for maxMSRs entries.
type msrs struct {
	n       uint32
	_       uint32
	entries [maxMSRs]MSR
}

// LAPIC is the local APIC's register page.
//
// mirrors struct kvm_lapic_state
type LAPIC struct {
	Regs [1024]byte
}

// memoryRegion mirrors struct kvm_userspace_memory_region.
type memoryRegion struct {
	slot          uint32
	flags         uint32
	guestPhysAddr uint64
	memorySize    uint64
	userspaceAddr uint64
}

// irqLevel mirrors struct kvm_irq_level.
type irqLevel struct {
	irq   uint32
	level uint32
}

// irqfd mirrors struct kvm_irqfd.
type irqfd struct {
	fd         uint32
	gsi        uint32
	flags      uint32
	resamplefd uint32
	_          [16]uint8
}

// pitConfig mirrors struct kvm_pit_config.
type pitConfig struct {
	flags uint32
	_     [15]uint32
}

// ioeventfd mirrors struct kvm_ioeventfd.
type ioeventfd struct {
	datamatch uint64
	addr      uint64
	len       uint32
	fd        int32
	flags     uint32
	_         [36]uint8
}

// Flags for ioeventfd.flags and pitConfig.flags.
const (
	ioeventfdDatamatch = 1 << 0 // KVM_IOEVENTFD_FLAG_DATAMATCH
	ioeventfdPIO       = 1 << 1 // KVM_IOEVENTFD_FLAG_PIO
	ioeventfdDeassign  = 1 << 2 // KVM_IOEVENTFD_FLAG_DEASSIGN
	pitSpeakerDummy    = 1      // KVM_PIT_SPEAKER_DUMMY
)
