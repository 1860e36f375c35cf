package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/host"
)

// newDoctorCmd is `hull doctor`: what this host can do for each isolation mode.
func newDoctorCmd(g *globals, io stdio) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "doctor [--json]",
		Short: "Check what this host can do: KVM, cgroups, runtimes, guest kernel, nested lab",
		Long: "doctor probes the host and says, for each isolation mode, whether it works here and what\n" +
			"to install or do when it does not. --json prints the same report for scripts; its fields\n" +
			"are documented in docs/doctor.md. The exit status is 0 when at least one mode works, 1\n" +
			"otherwise.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd.Context(), g, io, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}

func runDoctor(ctx context.Context, g *globals, io stdio, asJSON bool) error {
	r := host.Probe(ctx, host.System(g.cache))
	if asJSON {
		enc := json.NewEncoder(io.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("doctor: %w", err)
		}
	} else {
		printDoctor(io.out, r)
	}
	if !r.Modes.Container.OK && !r.Modes.VM.OK {
		return exitError{1}
	}
	return nil
}

// printDoctor writes the report for people: verdicts first, then the details.
func printDoctor(w io.Writer, r host.Report) {
	verdict := func(name string, v host.Verdict) {
		ok := "no"
		if v.OK {
			ok = "ok"
		}
		fmt.Fprintf(w, "  %-10s %s: %s\n", name, ok, v.Summary)
		for _, f := range v.Fix {
			fmt.Fprintf(w, "  %-10s   -> %s\n", "", f)
		}
	}
	fmt.Fprintln(w, "Isolation modes")
	verdict("container", r.Modes.Container)
	verdict("vm", r.Modes.VM)
	fmt.Fprintf(w, "  %-10s %s: %s\n", "auto", r.Modes.Auto.Mode, r.Modes.Auto.Reason)

	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "  %-13s"+format+"\n", append([]any{label + ":"}, a...)...)
	}
	fmt.Fprintln(w, "\nHost")
	user := "not root"
	if r.Root {
		user = "root"
	}
	line("Kernel", "%s (%s)", r.Kernel, user)
	line("KVM", "%s", kvmLine(r.KVM))
	line("Cgroups", "%s", cgroupLine(r.Cgroup))
	var fss []string
	for _, f := range r.Filesystems {
		s := f.Name + " " + f.State
		if f.State == host.FSLoadable {
			s += " (modprobe " + f.Name + ")"
		}
		fss = append(fss, s)
	}
	line("Filesystems", "%s", strings.Join(fss, ", "))
	line("Loop", "%s", deviceLine(r.Loop, "modprobe loop"))
	line("Tun", "%s", deviceLine(r.Tun, "modprobe tun"))
	for _, t := range r.Runtimes {
		line(t.Name, "%s", toolLine(t, "apt-get install "+t.Name))
	}
	line("QEMU", "%s", toolLine(r.QEMU, "apt-get install qemu-system-x86 (the nested lab needs it)"))

	file := func(label string, f host.File, fix string) {
		if f.Exists {
			line(label, "%s", f.Path)
			return
		}
		line(label, "%s missing: %s", f.Path, fix)
	}
	fmt.Fprintln(w, "\nGuest (VM mode)")
	file("Kernel", r.Guest.Kernel, "make kernel")
	file("Kernel ELF", r.Guest.KernelELF, "make kernel")
	file("Initramfs", r.Guest.Initramfs, "scripts/setup")
	fmt.Fprintln(w, "\nNested lab (make lab-smoke)")
	file("L1 kernel", r.Lab.Kernel, "scripts/lab-kernel")
	file("L1 vmlinux", r.Lab.KernelELF, "scripts/lab-vmlinux (optional: L1 boots about 2 s faster)")
	file("Modules", r.Lab.Modules, "scripts/lab-kernel")
	file("Busybox", r.Lab.Busybox, "scripts/lab-kernel")
	ready := "ready"
	if !r.Lab.Ready {
		ready = "not ready: run scripts/setup"
	}
	line("Lab", "%s", ready)
}

func kvmLine(k host.KVM) string {
	var s string
	switch k.Kind {
	case host.KVMHardware:
		s = map[string]string{"intel": "hardware VT-x", "amd": "hardware AMD-V"}[k.Vendor] + " (" + k.Module + ")"
	case host.KVMPVM:
		s = "PVM (kvm_pvm): boots only PVM guest kernels"
	case host.KVMUnknown:
		s = "unknown kind (no kvm_intel, kvm_amd or kvm_pvm module)"
	default:
		s = "absent: no VM mode"
	}
	if k.Device.Exists {
		if k.Device.Usable {
			s += fmt.Sprintf(", /dev/kvm usable, API version %d", k.APIVersion)
		} else {
			s += ", /dev/kvm not usable: " + k.Device.Error
		}
	}
	switch {
	case k.CPUFlag:
		s += ", CPU has " + map[string]string{"intel": "vmx", "amd": "svm"}[k.Vendor]
	case k.Hypervisor:
		s += ", CPU has no vmx/svm (this host is a VM)"
	default:
		s += ", CPU has no vmx/svm"
	}
	return s
}

func cgroupLine(c host.Cgroup) string {
	s := c.Version
	if len(c.V1Controllers) > 0 {
		s += "; v1 controllers " + strings.Join(c.V1Controllers, " ")
	}
	if c.V2Path != "" {
		ctl := strings.Join(c.V2Controllers, " ")
		if ctl == "" {
			ctl = "no controllers"
		}
		s += "; v2 at " + c.V2Path + " (" + ctl + ")"
	}
	if c.Version == host.CgroupNone {
		s += ": mount cgroup2 on /sys/fs/cgroup"
	}
	return s
}

func deviceLine(d host.Device, fix string) string {
	switch {
	case d.Usable:
		return d.Path + " usable"
	case d.Exists:
		return d.Path + " not usable: " + d.Error + " (run as root)"
	}
	return d.Path + " missing: " + fix
}

func toolLine(t host.Tool, fix string) string {
	if t.Path == "" {
		return "not found: " + fix
	}
	v := t.Version
	if v == "" {
		v = "unknown version"
	}
	return v + " (" + t.Path + ")"
}
