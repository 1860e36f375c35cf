package host

import (
	"fmt"
	"strings"
)

// containerVerdict: container mode runs the image through runc or crun, as root, with
// cgroups, erofs layer images on loop devices and an overlay on top.
func (r Report) containerVerdict() Verdict {
	var why, fix []string
	if !r.Root {
		why = append(why, "not root")
		fix = append(fix, "run hull as root (sudo hull ...)")
	}
	var runtimes []string
	for _, t := range r.Runtimes {
		if t.Path != "" {
			runtimes = append(runtimes, t.Name)
		}
	}
	if len(runtimes) == 0 {
		why = append(why, "no OCI runtime")
		fix = append(fix, "install runc or crun (apt-get install runc)")
	}
	if r.Cgroup.Version == CgroupNone {
		why = append(why, "no cgroups mounted")
		fix = append(fix, "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)")
	}
	for _, f := range r.Filesystems {
		if f.Name == "ext4" || f.Available() {
			continue
		}
		why = append(why, f.Name+" "+f.State)
		if f.State == FSLoadable {
			fix = append(fix, "load the "+f.Name+" module (modprobe "+f.Name+")")
		} else {
			fix = append(fix, "use a kernel with "+f.Name+" (CONFIG_"+strings.ToUpper(map[string]string{"overlay": "overlay_fs", "erofs": "erofs_fs"}[f.Name])+")")
		}
	}
	if !r.Loop.Usable {
		why = append(why, "no loop devices ("+r.Loop.Error+")")
		fix = append(fix, "load the loop module (modprobe loop) and run as root")
	}
	if len(why) > 0 {
		return Verdict{Summary: strings.Join(why, ", "), Fix: fix}
	}
	v := Verdict{OK: true, Summary: strings.Join(runtimes, " and ") + ", cgroup " + r.Cgroup.Version + ", overlay and erofs", Fix: []string{}}
	if r.Cgroup.Version == CgroupHybrid && len(runtimes) == 1 && runtimes[0] == "crun" {
		v.Summary += "; note: crun fails on hybrid cgroup layouts, install runc (apt-get install runc)"
	}
	return v
}

// vmVerdict: VM mode needs a /dev/kvm that boots an ordinary Linux guest (hardware
// VT-x/AMD-V; PVM boots only PVM guest kernels) and the guest kernel and initramfs.
func (r Report) vmVerdict() Verdict {
	k := r.KVM
	switch {
	case k.Kind == KVMAbsent:
		v := Verdict{Summary: "no /dev/kvm"}
		switch {
		case k.CPUFlag:
			m := "kvm_" + k.Vendor
			v.Fix = []string{fmt.Sprintf("the CPU has %s: load KVM (modprobe %s)", map[string]string{"intel": "VT-x", "amd": "AMD-V"}[k.Vendor], m)}
		case k.Hypervisor:
			v.Fix = []string{"this host is a VM without nested virtualization: enable it in the hypervisor, or use a bare-metal host with VT-x/AMD-V",
				"or run with --isolation container"}
		default:
			v.Fix = []string{"the CPU has no VT-x/AMD-V (or it is off in the firmware): enable it, or run with --isolation container"}
		}
		return v
	case !k.Device.Usable:
		return Verdict{Summary: "/dev/kvm is not usable: " + k.Device.Error,
			Fix: []string{"run hull as root, or add the user to the kvm group (usermod -aG kvm $USER)"}}
	case k.APIVersion != KVMAPIVersion:
		return Verdict{Summary: fmt.Sprintf("KVM API version %d, hull needs %d", k.APIVersion, KVMAPIVersion),
			Fix: []string{"use a Linux kernel with a standard KVM"}}
	case k.Kind == KVMPVM:
		return Verdict{Summary: "PVM: only PVM guest kernels boot here; use the nested lab (make lab-smoke) or a host with VT-x/AMD-V",
			Fix: []string{"test VM mode in the nested lab: make lab-smoke (QEMU emulating AMD-V, see docs/lab.md)",
				"or run on a host with VT-x/AMD-V (kvm_intel or kvm_amd)",
				"or run with --isolation container"}}
	case k.Kind == KVMUnknown:
		return Verdict{Summary: "/dev/kvm works but no kvm_intel, kvm_amd or kvm_pvm module is loaded: cannot tell whether it boots Linux",
			Fix: []string{"try --isolation vm explicitly, or run hull doctor on a host with VT-x/AMD-V"}}
	}
	var why, fix []string
	if !r.Guest.Kernel.Exists && !r.Guest.KernelELF.Exists {
		why = append(why, "no guest kernel at "+r.Guest.Kernel.Path)
		fix = append(fix, "build it: make kernel (or scripts/setup)")
	}
	if !r.Guest.Initramfs.Exists {
		why = append(why, "no initramfs at "+r.Guest.Initramfs.Path)
		fix = append(fix, "build it: scripts/setup")
	}
	if len(why) > 0 {
		return Verdict{Summary: "KVM boots Linux, but " + strings.Join(why, ", "), Fix: fix}
	}
	return Verdict{OK: true, Summary: "boots Linux (" + k.Module + ")", Fix: []string{}}
}
