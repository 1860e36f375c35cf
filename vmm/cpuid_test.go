package vmm

import (
	"testing"

	"github.com/hullvm/hull/kvm"
)

// find returns the entry for leaf fn, subleaf idx.
func find(es []kvm.CPUIDEntry, fn, idx uint32) (kvm.CPUIDEntry, bool) {
	for _, e := range es {
		if e.Function == fn && e.Index == idx {
			return e, true
		}
	}
	return kvm.CPUIDEntry{}, false
}

func TestCPUIDFor(t *testing.T) {
	supported := []kvm.CPUIDEntry{
		{Function: 0, EAX: 0xd},
		{Function: leafFeatures, EBX: 0xff00_0800, ECX: 0x1, EDX: 0x1},
		{Function: leafTopology, Index: 0, EDX: 99},
		{Function: leafKVM, EAX: 0x4000_0001},
		{Function: leafKVMFeatures, EAX: 0x1_01fb},
		{Function: leafAMDSize, ECX: 0x3007},
	}
	tests := []struct {
		name    string
		in      []kvm.CPUIDEntry
		id, n   int
		host    hostCPU
		kvmMax  uint32
		cores   uint32 // leaf 0xb level 1 EBX
		shift   uint32 // leaf 0xb level 1 EAX
		timing  bool
		kvmFeat uint32
	}{
		{"one vCPU", supported, 0, 1, hostCPU{}, leafKVMFeatures, 1, 0, false, 0x1_01fb},
		{"AP 3 of 4 with TSC", supported, 3, 4, hostCPU{tscKHz: 2_000_000, tscDeadline: true}, leafTiming, 4, 2, true, 0x1_01fb},
		{"5 vCPUs", supported, 4, 5, hostCPU{}, leafKVMFeatures, 5, 3, false, 0x1_01fb},
		{"no KVM leaves from KVM", supported[:4], 1, 2, hostCPU{tscDeadline: true}, leafKVMFeatures, 2, 1, false, kvmFeatureClocksource2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]kvm.CPUIDEntry(nil), tc.in...)
			es := cpuidFor(tc.in, tc.id, tc.n, tc.host)
			for i := range before {
				if before[i] != tc.in[i] {
					t.Fatal("cpuidFor modified its input")
				}
			}
			l1, _ := find(es, leafFeatures, 0)
			if got := l1.EBX >> 24; got != uint32(tc.id) {
				t.Errorf("leaf 1 APIC id %d, want %d", got, tc.id)
			}
			if got := l1.EBX >> 16 & 0xff; got != uint32(tc.n) {
				t.Errorf("leaf 1 logical CPUs %d, want %d", got, tc.n)
			}
			if l1.EBX&0xffff != 0x0800 {
				t.Errorf("leaf 1 EBX low bits %#x changed", l1.EBX&0xffff)
			}
			if l1.ECX&ecxHypervisor == 0 {
				t.Error("hypervisor bit clear")
			}
			if got := l1.ECX&ecxTSCDeadline != 0; got != tc.host.tscDeadline {
				t.Errorf("TSC-deadline bit %v, want %v", got, tc.host.tscDeadline)
			}
			for lvl := uint32(0); lvl < 3; lvl++ {
				e, ok := find(es, leafTopology, lvl)
				if !ok || e.EDX != uint32(tc.id) || e.ECX&0xff != lvl {
					t.Errorf("leaf 0xb.%d = %+v (found %v), want x2APIC id %d", lvl, e, ok, tc.id)
				}
			}
			if e, _ := find(es, leafTopology, 1); e.EBX != tc.cores || e.EAX != tc.shift {
				t.Errorf("leaf 0xb.1 = %d cores shift %d, want %d shift %d", e.EBX, e.EAX, tc.cores, tc.shift)
			}
			n := 0
			for _, e := range es {
				if e.Function == leafTopology && e.Index == 0 {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d entries for leaf 0xb.0, want 1", n)
			}
			k, ok := find(es, leafKVM, 0)
			if !ok || k.EAX != tc.kvmMax || k.EBX != kvmSignature[0] || k.ECX != kvmSignature[1] || k.EDX != kvmSignature[2] {
				t.Errorf("leaf 0x40000000 = %+v, want max %#x and KVMKVMKVM", k, tc.kvmMax)
			}
			if f, _ := find(es, leafKVMFeatures, 0); f.EAX != tc.kvmFeat {
				t.Errorf("KVM features %#x, want %#x", f.EAX, tc.kvmFeat)
			}
			tm, ok := find(es, leafTiming, 0)
			if ok != tc.timing || (ok && (tm.EAX != tc.host.tscKHz || tm.EBX != apicBusKHz)) {
				t.Errorf("timing leaf %+v (present %v), want present %v with %d kHz", tm, ok, tc.timing, tc.host.tscKHz)
			}
		})
	}
}
