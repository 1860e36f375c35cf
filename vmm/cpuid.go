package vmm

import (
	"encoding/binary"
	"math/bits"

	"github.com/hullvm/hull/kvm"
)

// CPUID leaves and bits the VMM adjusts (Intel SDM vol. 2A, CPUID; AMD APM vol. 3, E;
// Linux Documentation/virt/kvm/x86/cpuid.rst).
const (
	leafFeatures    = 0x1
	leafCache       = 0x4
	leafTopology    = 0xb
	leafKVM         = 0x4000_0000 // KVM_CPUID_SIGNATURE
	leafKVMFeatures = 0x4000_0001 // KVM_CPUID_FEATURES
	leafTiming      = 0x4000_0010 // TSC and APIC bus frequencies in kHz
	leafAMDSize     = 0x8000_0008

	ecxHypervisor  = 1 << 31 // leaf 1: running under a hypervisor
	ecxTSCDeadline = 1 << 24 // leaf 1: the LAPIC timer has TSC-deadline mode
	edxHTT         = 1 << 28 // leaf 1: more than one logical processor per package

	kvmFeatureClocksource2 = 1 << 3 // KVM_FEATURE_CLOCKSOURCE2: kvmclock at the new MSRs

	apicBusKHz = 1_000_000 // KVM's APIC timer ticks at 1 GHz
)

// hostCPU is what KVM says about the host that the CPUID table depends on.
type hostCPU struct {
	tscKHz      uint32 // 0 when unknown
	tscDeadline bool   // KVM_CAP_TSC_DEADLINE_TIMER
}

// kvmSignature is "KVMKVMKVM\0\0\0" as EBX, ECX, EDX.
var kvmSignature = [3]uint32{
	binary.LittleEndian.Uint32([]byte("KVMK")),
	binary.LittleEndian.Uint32([]byte("VMKV")),
	binary.LittleEndian.Uint32([]byte("M\x00\x00\x00")),
}

// cpuidFor returns the CPUID table for vCPU id of n, derived from what KVM supports:
// the APIC id and topology (one package of n cores, one thread each), the hypervisor
// bit, KVM's paravirtual leaves with kvmclock so the guest takes its TSC frequency
// from KVM and never calibrates against the PIT (which stalls on slow hosts), and a
// timing leaf when the TSC frequency is known, and the TSC-deadline timer when KVM
// emulates it (KVM_GET_SUPPORTED_CPUID leaves that bit to the VMM), which spares Linux
// calibrating the LAPIC timer. It does not modify supported.
func cpuidFor(supported []kvm.CPUIDEntry, id, n int, h hostCPU) []kvm.CPUIDEntry {
	tscKHz := h.tscKHz
	shift := uint32(bits.Len(uint(n - 1))) // APIC id bits per package
	out := make([]kvm.CPUIDEntry, 0, len(supported)+4)
	haveKVM, haveFeatures := false, false
	for _, e := range supported {
		switch e.Function {
		case leafFeatures:
			e.EBX = e.EBX&0x0000_ffff | uint32(n)<<16 | uint32(id)<<24
			e.ECX |= ecxHypervisor
			if h.tscDeadline {
				e.ECX |= ecxTSCDeadline
			}
			if n > 1 {
				e.EDX |= edxHTT
			} else {
				e.EDX &^= edxHTT
			}
		case leafCache:
			// EAX[31:26]: cores per package - 1; EAX[25:14]: threads sharing the cache - 1.
			e.EAX = e.EAX&0x3fff | uint32(n-1)<<26
			if level := e.EAX >> 5 & 7; level == 3 {
				e.EAX |= uint32(n-1) << 14 // the last-level cache is shared by all
			}
		case leafTopology:
			continue // rebuilt below
		case leafKVM:
			haveKVM = true
			e.EBX, e.ECX, e.EDX = kvmSignature[0], kvmSignature[1], kvmSignature[2]
			e.EAX = leafKVMFeatures
			if tscKHz != 0 {
				e.EAX = leafTiming
			}
		case leafKVMFeatures:
			haveFeatures = true
		case leafTiming:
			continue // rebuilt below
		case leafAMDSize:
			// ECX[15:12]: APIC id bits; ECX[7:0]: cores per package - 1.
			e.ECX = e.ECX&^0xf0ff | shift<<12 | uint32(n-1)
		}
		out = append(out, e)
	}
	// Leaf 0xb: level 0 the threads (one per core), level 1 the cores, then the
	// terminating invalid level; EDX is the x2APIC id throughout.
	out = append(out,
		kvm.CPUIDEntry{Function: leafTopology, Index: 0, Flags: kvm.CPUIDFlagSignificantIndex,
			EAX: 0, EBX: 1, ECX: 1 << 8, EDX: uint32(id)},
		kvm.CPUIDEntry{Function: leafTopology, Index: 1, Flags: kvm.CPUIDFlagSignificantIndex,
			EAX: shift, EBX: uint32(n), ECX: 2<<8 | 1, EDX: uint32(id)},
		kvm.CPUIDEntry{Function: leafTopology, Index: 2, Flags: kvm.CPUIDFlagSignificantIndex,
			ECX: 2, EDX: uint32(id)},
	)
	if !haveKVM {
		max := uint32(leafKVMFeatures)
		if tscKHz != 0 {
			max = leafTiming
		}
		out = append(out, kvm.CPUIDEntry{Function: leafKVM, EAX: max,
			EBX: kvmSignature[0], ECX: kvmSignature[1], EDX: kvmSignature[2]})
	}
	if !haveFeatures {
		// KVM did not say; kvmclock is as old as KVM's paravirtual interface itself.
		out = append(out, kvm.CPUIDEntry{Function: leafKVMFeatures, EAX: kvmFeatureClocksource2})
	}
	if tscKHz != 0 {
		out = append(out, kvm.CPUIDEntry{Function: leafTiming, EAX: tscKHz, EBX: apicBusKHz})
	}
	return out
}
