package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GokvmReason is why gokvm is never a hull bench subject.
const GokvmReason = "gokvm cannot run the workload (no virtio-mmio disks, no vsock for hull's agent), " +
	"and in the nested lab its boot of a Linux guest stalls at timer calibration " +
	"(\"tsc: Unable to calibrate against PIT\": no kvmclock CPUID leaves)"

// BootCmdline is the guest command line of the boot-to-exit pair: hull-init finds no
// channel at /dev/hvc0, fails at once and the guest resets, so the figure is the time
// from starting the VMM to the guest's first process and back out, with no workload.
// QEMU leaves through a triple fault (reboot=t), hull's VMM through the i8042 (reboot=k).
const BootCmdline = "console=ttyS0 panic=-1 quiet hull.channel=/dev/hvc0"

// bootTimeout bounds one boot-to-exit run.
const bootTimeout = 4 * time.Minute

// Boot says how to measure boot-to-exit of hull's VMM against QEMU's microvm, both
// booting the same kernel and initramfs.
type Boot struct {
	Kernel, Initrd string
	QEMU           string   // qemu-system-x86_64
	QEMUArgs       []string // extra arguments, e.g. "-L", "." for bios-microvm.bin
}

// bootSubject is one VMM of the boot-to-exit pair.
type bootSubject struct {
	Name string
	Argv []string
}

// boots returns the boot-to-exit pair when qemu is asked for, or why it is missing.
func (c Config) boots() ([]bootSubject, []Missing) {
	if !slices.Contains(c.Peers, "qemu") {
		return nil, nil
	}
	switch {
	case c.VMReason != "":
		return nil, []Missing{{"qemu", "QEMU microvm needs a KVM that boots Linux: " + c.VMReason}}
	case c.Boot == nil:
		return nil, []Missing{{"qemu", "no guest kernel, initramfs or QEMU binary given for the boot-to-exit pair"}}
	}
	return c.Boot.subjects(c.Hull), nil
}

func (b Boot) subjects(hull string) []bootSubject {
	q := append([]string{b.QEMU}, b.QEMUArgs...)
	q = append(q, "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=off", "-enable-kvm", "-cpu", "host",
		"-m", "256", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
		"-kernel", b.Kernel, "-initrd", b.Initrd, "-append", BootCmdline+" reboot=t")
	h := []string{hull, "vm", "run", "--kernel", b.Kernel, "--initrd", b.Initrd, "--memory", "256",
		"--cmdline", BootCmdline + " reboot=k"}
	return []bootSubject{{"hull-vmm-boot", h}, {"qemu", q}}
}

// measure boots once and times start to exit. The guest must have reached hull-init
// (which reports its missing channel), or the figure would time something else.
func (b bootSubject) measure(ctx context.Context, run int, where string) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, b.Argv[0], b.Argv[1:]...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	if ctx.Err() != nil {
		return Sample{}, fmt.Errorf("boot did not exit within %v: %s", bootTimeout, tail(out.String()))
	}
	if !strings.Contains(out.String(), "hull-init") {
		return Sample{}, fmt.Errorf("the guest never reached hull-init (exit %v): %s", err, tail(out.String()))
	}
	return Sample{Subject: b.Name, Metric: "boot-to-exit", Unit: "ms", Value: ms(d), Run: run, Where: where}, nil
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// Markers around the inner run's JSON report in the lab's output, which also holds the
// inner run's progress lines and anything else L1 printed.
const (
	LabBegin = "HULL-BENCH-LAB-JSON-BEGIN"
	LabEnd   = "HULL-BENCH-LAB-JSON-END"
)

// LabArgs is the inner run's `hull bench` command line for the nested lab.
type LabArgs struct {
	Peers   []string // "qemu" or none
	Runs    int
	Density int
	FileMB  int
	Busybox string // L1 path of the busybox for the bench image
	Rootfs  string // L1 path of the bench image's tarball
	Boot    *Boot  // L1 paths of the boot-to-exit pair's kernel, initramfs and QEMU
}

// LabScript is the L1 script: run hull bench for VM mode with progress on stderr and the
// JSON report between LabBegin and LabEnd on stdout, and exit with its status.
func LabScript(a LabArgs) string {
	args := []string{"hull", "bench", "--modes", "vm", "--peers", shellQuote(strings.Join(a.Peers, ",")),
		"--runs", strconv.Itoa(a.Runs), "--density", strconv.Itoa(a.Density), "--file-mb", strconv.Itoa(a.FileMB),
		"--busybox", shellQuote(a.Busybox), "--rootfs", shellQuote(a.Rootfs), "--where", "lab", "--json"}
	if a.Boot != nil {
		args = append(args, "--boot-kernel", shellQuote(a.Boot.Kernel), "--boot-initrd", shellQuote(a.Boot.Initrd),
			"--boot-qemu", shellQuote(a.Boot.QEMU))
		for _, q := range a.Boot.QEMUArgs {
			args = append(args, "--boot-qemu-arg="+shellQuote(q))
		}
	}
	return strings.Join(args, " ") + " >/tmp/bench.json\n" +
		"st=$?\n" +
		"echo " + LabBegin + "\n" +
		"cat /tmp/bench.json\n" +
		"echo " + LabEnd + "\n" +
		"exit $st\n"
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ParseLab finds the inner run's report in the lab's output. Every sample must be
// stamped as taken in the lab: a report that says otherwise is refused rather than
// compared with the host's figures.
func ParseLab(output string) (*Report, error) {
	_, rest, ok := strings.Cut(output, LabBegin+"\n")
	if !ok {
		return nil, fmt.Errorf("the lab printed no bench report; its output ends:\n%s", tail(output))
	}
	body, _, ok := strings.Cut(rest, LabEnd)
	if !ok {
		return nil, errors.New("the lab's bench report is cut short")
	}
	if strings.TrimSpace(body) == "" {
		return nil, fmt.Errorf("the bench run in the lab wrote no report; its output ends:\n%s", tail(output))
	}
	r, err := ReadJSON(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	for _, s := range r.Samples {
		if s.Where != "lab" {
			return nil, fmt.Errorf("lab report: sample %s %s is stamped %q, not lab", s.Subject, s.Metric, s.Where)
		}
	}
	return r, nil
}

// MergeLab adds a report measured in the nested lab to the host's: its samples, its
// missing subjects, and its baseline as the lab baseline. A nil lab leaves r alone.
func (r *Report) MergeLab(lab *Report) {
	if lab == nil {
		return
	}
	r.Samples = append(r.Samples, lab.Samples...)
	for _, m := range lab.Missing {
		if m.Subject == "hull-container" {
			continue // measured on the host
		}
		r.Missing = append(r.Missing, Missing{m.Subject, "in the lab: " + m.Reason})
	}
	r.LabBaseline = lab.LabBaseline
	if r.LabBaseline == "" {
		r.LabBaseline = lab.Baseline
	}
	r.Notes = append(r.Notes, fmt.Sprintf("lab rows ran in the nested KVM lab (QEMU TCG, L1 with kvm-amd), %d rounds: "+
		"absolute lab times are emulation times, compare only their ratios to %s", lab.Runs, r.LabBaseline))
}
