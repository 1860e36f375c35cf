package host

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/hullvm/hull/cache"
)

// KVM kinds, as Report.KVM.Kind.
const (
	KVMAbsent   = "absent"   // no /dev/kvm: no VM mode
	KVMHardware = "hardware" // VT-x (kvm_intel) or AMD-V (kvm_amd): boots any kernel
	KVMPVM      = "pvm"      // kvm_pvm: boots only kernels built as PVM guests
	KVMUnknown  = "unknown"  // /dev/kvm exists but no known KVM module is loaded
)

// KVMAPIVersion is the only KVM API version there has ever been (KVM_GET_API_VERSION).
const KVMAPIVersion = 12

// Cgroup layouts, as Report.Cgroup.Version.
const (
	CgroupV1     = "v1"     // only v1 hierarchies
	CgroupV2     = "v2"     // the unified hierarchy at /sys/fs/cgroup
	CgroupHybrid = "hybrid" // v1 hierarchies plus a unified one elsewhere (often empty)
	CgroupNone   = "none"   // nothing mounted
)

// File system states, as Filesystem.State.
const (
	FSBuiltin  = "builtin"  // in /proc/filesystems, part of the kernel
	FSModule   = "module"   // in /proc/filesystems, from a loaded module
	FSLoadable = "loadable" // not loaded, but a module for it is installed: modprobe it
	FSMissing  = "missing"
)

// Report is what Probe found. Its JSON form is hull doctor --json, documented in
// docs/doctor.md: add fields, never rename or remove them.
type Report struct {
	Kernel      string       `json:"kernel"` // host kernel release
	Root        bool         `json:"root"`   // running as uid 0
	KVM         KVM          `json:"kvm"`
	Cgroup      Cgroup       `json:"cgroup"`
	Filesystems []Filesystem `json:"filesystems"` // overlay, erofs, ext4
	Loop        Device       `json:"loop"`        // /dev/loop-control
	Tun         Device       `json:"tun"`         // /dev/net/tun
	Runtimes    []Tool       `json:"runtimes"`    // runc, crun
	QEMU        Tool         `json:"qemu"`        // qemu-system-x86_64, for the nested lab
	Guest       Guest        `json:"guest"`
	Lab         Lab          `json:"lab"`
	Modes       Modes        `json:"modes"`
}

// KVM is what /dev/kvm is backed by and whether it can be used.
type KVM struct {
	Kind       string `json:"kind"`        // KVMAbsent, KVMHardware, KVMPVM or KVMUnknown
	Vendor     string `json:"vendor"`      // "intel", "amd" or ""
	Module     string `json:"module"`      // "kvm_intel", "kvm_amd", "kvm_pvm" or ""
	CPUFlag    bool   `json:"cpu_flag"`    // vmx or svm in /proc/cpuinfo
	Hypervisor bool   `json:"hypervisor"`  // the host is itself a VM (cpuinfo "hypervisor")
	Device     Device `json:"device"`      // /dev/kvm
	APIVersion int    `json:"api_version"` // KVM_GET_API_VERSION, 0 when /dev/kvm is unusable
}

// Cgroup is the cgroup layout.
type Cgroup struct {
	Version       string   `json:"version"`        // CgroupV1, CgroupV2, CgroupHybrid, CgroupNone
	V1Controllers []string `json:"v1_controllers"` // controllers bound to v1 hierarchies
	V2Path        string   `json:"v2_path"`        // where the unified hierarchy is mounted, or ""
	V2Controllers []string `json:"v2_controllers"` // its cgroup.controllers
}

// Filesystem is one file system hull uses.
type Filesystem struct {
	Name  string `json:"name"`
	State string `json:"state"` // FSBuiltin, FSModule, FSLoadable or FSMissing
}

// Available reports whether the file system can be mounted now.
func (f Filesystem) Available() bool { return f.State == FSBuiltin || f.State == FSModule }

// Device is a device node hull opens.
type Device struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	Usable bool   `json:"usable"`          // opens read-write
	Error  string `json:"error,omitempty"` // why it does not
}

// Tool is a program found on PATH.
type Tool struct {
	Name    string `json:"name"`
	Path    string `json:"path"`    // "" when not found
	Version string `json:"version"` // from --version, "" when unknown
}

// File is a file setup leaves in the cache.
type File struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
}

// Guest is the guest kernel and initramfs VM mode boots.
type Guest struct {
	Kernel    File `json:"kernel"`     // bzImage
	KernelELF File `json:"kernel_elf"` // vmlinux
	Initramfs File `json:"initramfs"`
	// Boot is the kernel VM mode boots by default (cache.Dir.BootKernel).
	Boot string `json:"boot"`
}

// Lab is the nested lab's L1 kernel, modules and busybox.
type Lab struct {
	Kernel    File `json:"kernel"`
	KernelELF File `json:"kernel_elf"` // lab/vmlinux from scripts/lab-vmlinux: optional, boots faster
	Modules   File `json:"modules"`    // folder with kvm-amd.ko
	Busybox   File `json:"busybox"`
	Ready     bool `json:"ready"` // those and QEMU are all there
}

// Modes holds a verdict per isolation mode and what --isolation auto picks.
type Modes struct {
	Container Verdict `json:"container"`
	VM        Verdict `json:"vm"`
	Auto      Auto    `json:"auto"`
}

// Auto is Report.Isolation's answer.
type Auto struct {
	Mode   string `json:"mode"` // Container or VM
	Reason string `json:"reason"`
}

// Verdict says whether an isolation mode works here, and if not, what to do.
type Verdict struct {
	OK      bool     `json:"ok"`
	Summary string   `json:"summary"`
	Fix     []string `json:"fix"` // what to install or do; empty when OK
}

// Isolation modes, as returned by Report.Isolation.
const (
	Container = "container"
	VM        = "vm"
)

// Isolation is what `--isolation auto` picks: VM mode when this host's KVM can boot the
// guest kernel and the guest files are there, container mode otherwise, with the reason.
// When container mode cannot work either, the reason says so too; running it will fail
// with the details.
func (r Report) Isolation() (mode, reason string) {
	if r.Modes.VM.OK {
		return VM, "KVM (" + r.KVM.Module + ") can boot the guest kernel"
	}
	reason = "VM mode is unavailable (" + r.Modes.VM.Summary + ")"
	if !r.Modes.Container.OK {
		reason += "; container mode will not work either (" + r.Modes.Container.Summary + ")"
	}
	return Container, reason
}

// Env is how Probe reads the host. System returns the real one; tests pass a fake tree.
type Env struct {
	FS         fs.FS                                                  // the host's root: proc/, sys/, dev/, lib/modules/, the cache
	Cache      cache.Dir                                              // absolute; read through FS
	OpenRW     func(path string) error                                // opens a device read-write and closes it
	KVMVersion func(path string) (int, error)                         // KVM_GET_API_VERSION on the device
	LookPath   func(name string) (string, error)                      // finds a program on PATH
	Version    func(ctx context.Context, path string) (string, error) // `path --version` output
	Euid       int
}

// rel turns an absolute host path into an fs.FS path.
func rel(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

func (e Env) read(p string) (string, error) {
	b, err := fs.ReadFile(e.FS, rel(p))
	return string(b), err
}

func (e Env) exists(p string) bool {
	_, err := fs.Stat(e.FS, rel(p))
	return err == nil
}

// Probe looks at the host and returns its report. It does not fail: what it cannot
// read counts as missing.
func Probe(ctx context.Context, e Env) Report {
	r := Report{Root: e.Euid == 0}
	rel, _ := e.read("/proc/sys/kernel/osrelease")
	r.Kernel = strings.TrimSpace(rel)
	r.KVM = e.kvm()
	r.Cgroup = e.cgroup()
	for _, name := range []string{"overlay", "erofs", "ext4"} {
		r.Filesystems = append(r.Filesystems, e.filesystem(name, r.Kernel))
	}
	r.Loop = e.device("/dev/loop-control")
	r.Tun = e.device("/dev/net/tun")
	for _, name := range []string{"runc", "crun"} {
		r.Runtimes = append(r.Runtimes, e.tool(ctx, name))
	}
	r.QEMU = e.tool(ctx, "qemu-system-x86_64")
	file := func(p string) File { return File{Path: p, Exists: e.exists(p)} }
	r.Guest = Guest{Kernel: file(e.Cache.Kernel()), KernelELF: file(e.Cache.KernelELF()), Initramfs: file(e.Cache.Initramfs())}
	r.Guest.Boot = e.Cache.BootKernel()
	r.Lab = Lab{
		Kernel:    file(e.Cache.LabKernel()),
		KernelELF: file(path.Join(path.Dir(e.Cache.LabKernel()), "vmlinux")),
		Modules:   file(path.Join(e.Cache.LabModules(), "kvm-amd.ko")),
		Busybox:   file(e.Cache.LabBusybox()),
	}
	r.Lab.Ready = r.Lab.Kernel.Exists && r.Lab.Modules.Exists && r.Lab.Busybox.Exists && r.QEMU.Path != ""
	r.Modes = Modes{Container: r.containerVerdict(), VM: r.vmVerdict()}
	r.Modes.Auto.Mode, r.Modes.Auto.Reason = r.Isolation()
	return r
}

// kvm works out what backs /dev/kvm: kvm_intel or kvm_amd (hardware), kvm_pvm (PVM).
// /sys/module is read rather than /proc/modules, which some kernels do not have and
// which does not list built-in modules.
func (e Env) kvm() KVM {
	k := KVM{Kind: KVMAbsent}
	cpu, _ := e.read("/proc/cpuinfo")
	flags := cpuFlags(cpu)
	k.Hypervisor = flags["hypervisor"]
	switch {
	case flags["vmx"]:
		k.CPUFlag, k.Vendor = true, "intel"
	case flags["svm"]:
		k.CPUFlag, k.Vendor = true, "amd"
	}
	for _, m := range []struct{ module, kind, vendor string }{
		{"kvm_intel", KVMHardware, "intel"},
		{"kvm_amd", KVMHardware, "amd"},
		{"kvm_pvm", KVMPVM, ""},
	} {
		if e.exists("/sys/module/" + m.module) {
			k.Module, k.Kind = m.module, m.kind
			if m.vendor != "" {
				k.Vendor = m.vendor
			}
			break
		}
	}
	k.Device = e.device("/dev/kvm")
	if k.Device.Exists && k.Module == "" {
		k.Kind = KVMUnknown
	}
	if !k.Device.Exists {
		k.Kind = KVMAbsent
	}
	if k.Device.Usable && e.KVMVersion != nil {
		v, err := e.KVMVersion("/dev/kvm")
		if err != nil {
			k.Device.Usable, k.Device.Error = false, "KVM_GET_API_VERSION: "+err.Error()
		}
		k.APIVersion = v
	}
	return k
}

// cpuFlags is the set of flags of the first processor in /proc/cpuinfo.
func cpuFlags(cpuinfo string) map[string]bool {
	set := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				set[f] = true
			}
			break
		}
	}
	return set
}

// cgroup reads the cgroup layout from /proc/self/mounts and /proc/cgroups.
func (e Env) cgroup() Cgroup {
	c := Cgroup{Version: CgroupNone, V1Controllers: []string{}, V2Controllers: []string{}}
	mounts, _ := e.read("/proc/self/mounts")
	v1 := false
	for _, line := range strings.Split(mounts, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch f[2] {
		case "cgroup":
			v1 = true
		case "cgroup2":
			if c.V2Path == "" || f[1] == "/sys/fs/cgroup" {
				c.V2Path = unescapeMount(f[1])
			}
		}
	}
	switch {
	case v1 && c.V2Path != "":
		c.Version = CgroupHybrid
	case v1:
		c.Version = CgroupV1
	case c.V2Path != "":
		c.Version = CgroupV2
	}
	if v1 {
		table, _ := e.read("/proc/cgroups")
		for _, line := range strings.Split(table, "\n") {
			f := strings.Fields(line)
			// subsys_name hierarchy num_cgroups enabled; hierarchy 0 is v2 or unused.
			if len(f) == 4 && !strings.HasPrefix(f[0], "#") && f[1] != "0" && f[3] == "1" {
				c.V1Controllers = append(c.V1Controllers, f[0])
			}
		}
		slices.Sort(c.V1Controllers)
	}
	if c.V2Path != "" {
		ctl, _ := e.read(path.Join(c.V2Path, "cgroup.controllers"))
		c.V2Controllers = append(c.V2Controllers, strings.Fields(ctl)...)
	}
	return c
}

// unescapeMount undoes the octal escapes (\040 for a space) of /proc/self/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// filesystem says whether name is in /proc/filesystems, from a module or built in, or
// can be loaded from /lib/modules/<release>.
func (e Env) filesystem(name, release string) Filesystem {
	table, _ := e.read("/proc/filesystems")
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == name {
			// Only loadable modules have an initstate in /sys/module.
			if e.exists("/sys/module/" + name + "/initstate") {
				return Filesystem{Name: name, State: FSModule}
			}
			return Filesystem{Name: name, State: FSBuiltin}
		}
	}
	if release != "" {
		dir := path.Join("/lib/modules", release, "kernel/fs", name)
		entries, _ := fs.ReadDir(e.FS, rel(dir))
		for _, en := range entries {
			if strings.HasPrefix(en.Name(), name+".ko") {
				return Filesystem{Name: name, State: FSLoadable}
			}
		}
	}
	return Filesystem{Name: name, State: FSMissing}
}

func (e Env) device(p string) Device {
	d := Device{Path: p, Exists: e.exists(p)}
	if !d.Exists {
		d.Error = "not found"
		return d
	}
	if e.OpenRW == nil {
		return d
	}
	if err := e.OpenRW(p); err != nil {
		d.Error = err.Error()
		return d
	}
	d.Usable = true
	return d
}

func (e Env) tool(ctx context.Context, name string) Tool {
	t := Tool{Name: name}
	if e.LookPath == nil {
		return t
	}
	p, err := e.LookPath(name)
	if err != nil {
		return t
	}
	t.Path = p
	if e.Version != nil {
		if out, err := e.Version(ctx, p); err == nil || out != "" {
			t.Version = parseVersion(out)
		}
	}
	return t
}

// parseVersion finds the version in a --version banner: the word after "version" on the
// first line that has one ("runc version 1.1.5+ds1", "QEMU emulator version 7.2.22 (...)").
func parseVersion(out string) string {
	sc := bufio.NewScanner(bytes.NewReader([]byte(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if strings.EqualFold(f[i], "version") {
				return f[i+1]
			}
		}
	}
	return ""
}
