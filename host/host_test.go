package host

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hullvm/hull/cache"
)

// fakeEnv is a host made of a testdata tree: a device opens when its file exists and is
// not in denied; the programs in tools are on PATH and print banner for --version.
func fakeEnv(t *testing.T, tree string, root bool, tools []string, denied ...string) Env {
	t.Helper()
	fsys := os.DirFS(filepath.Join("testdata", tree))
	euid := 1000
	if root {
		euid = 0
	}
	return Env{
		FS:    fsys,
		Cache: cache.Dir("/var/cache/hull"),
		OpenRW: func(p string) error {
			if slices.Contains(denied, p) {
				return fs.ErrPermission
			}
			_, err := fs.Stat(fsys, rel(p))
			return err
		},
		KVMVersion: func(string) (int, error) { return KVMAPIVersion, nil },
		LookPath: func(name string) (string, error) {
			if slices.Contains(tools, name) {
				return "/usr/bin/" + name, nil
			}
			return "", errors.New("not found")
		},
		Version: func(_ context.Context, p string) (string, error) {
			return filepath.Base(p) + " version 1.2.3\ncommit: abc\n", nil
		},
		Euid: euid,
	}
}

func TestProbe(t *testing.T) {
	all := []string{"runc", "crun", "qemu-system-x86_64"}
	tests := []struct {
		tree   string
		root   bool
		tools  []string
		denied []string

		kind, vendor, module string
		usable               bool
		cgroup               string
		v1, v2               []string
		v2Path               string
		erofs, overlay       string
		container, vm        bool
		vmSays               string // in the VM verdict's summary
		fixSays              string // in one of the VM fixes
		containerSays        string // in the container verdict's summary
		mode                 string
		labReady             bool
	}{
		{tree: "intel-v2", root: true, tools: all,
			kind: KVMHardware, vendor: "intel", module: "kvm_intel", usable: true,
			cgroup: CgroupV2, v1: []string{}, v2: []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}, v2Path: "/sys/fs/cgroup",
			erofs: FSModule, overlay: FSBuiltin, container: true, vm: true, vmSays: "boots Linux (kvm_intel)",
			containerSays: "runc and crun, cgroup v2", mode: VM, labReady: true},
		{tree: "amd-v1", root: true, tools: []string{"crun"},
			kind: KVMHardware, vendor: "amd", module: "kvm_amd", usable: true,
			cgroup: CgroupV1, v1: []string{"cpu", "memory", "pids"}, v2: []string{},
			erofs: FSLoadable, overlay: FSBuiltin, container: false, vm: false,
			vmSays: "no guest kernel at /var/cache/hull/kernel/current/bzImage", fixSays: "make kernel",
			containerSays: "erofs loadable", mode: Container, labReady: false},
		{tree: "pvm-hybrid", root: true, tools: all,
			kind: KVMPVM, module: "kvm_pvm", usable: true,
			cgroup: CgroupHybrid, v1: []string{"cpu", "memory", "pids"}, v2: []string{}, v2Path: "/sys/fs/cgroup/unified",
			erofs: FSBuiltin, overlay: FSBuiltin, container: true, vm: false,
			vmSays: "PVM: only PVM guest kernels boot here", fixSays: "make lab-smoke",
			containerSays: "cgroup hybrid", mode: Container, labReady: true},
		{tree: "pvm-hybrid", root: false, tools: []string{"runc"}, denied: []string{"/dev/kvm", "/dev/loop-control", "/dev/net/tun"},
			kind: KVMPVM, module: "kvm_pvm", usable: false,
			cgroup: CgroupHybrid, v1: []string{"cpu", "memory", "pids"}, v2: []string{}, v2Path: "/sys/fs/cgroup/unified",
			erofs: FSBuiltin, overlay: FSBuiltin, container: false, vm: false,
			vmSays: "/dev/kvm is not usable", fixSays: "kvm group",
			containerSays: "not root", mode: Container, labReady: false},
		{tree: "nokvm-v2", root: true, tools: all,
			kind: KVMAbsent, usable: false,
			cgroup: CgroupV2, v1: []string{}, v2: []string{"cpu", "memory", "pids"}, v2Path: "/sys/fs/cgroup",
			erofs: FSBuiltin, overlay: FSBuiltin, container: true, vm: false,
			vmSays: "no /dev/kvm", fixSays: "nested virtualization",
			containerSays: "overlay and erofs", mode: Container, labReady: false},
		{tree: "vmx-unloaded", root: true, tools: nil,
			kind: KVMAbsent, vendor: "intel", usable: false,
			cgroup: CgroupNone, v1: []string{}, v2: []string{},
			erofs: FSMissing, overlay: FSMissing, container: false, vm: false,
			vmSays: "no /dev/kvm", fixSays: "modprobe kvm_intel",
			containerSays: "no OCI runtime, no cgroups mounted, overlay missing, erofs missing, no loop devices", mode: Container, labReady: false},
	}
	for _, tc := range tests {
		name := tc.tree
		if !tc.root {
			name += "-user"
		}
		t.Run(name, func(t *testing.T) {
			r := Probe(context.Background(), fakeEnv(t, tc.tree, tc.root, tc.tools, tc.denied...))
			k := r.KVM
			if k.Kind != tc.kind || k.Vendor != tc.vendor || k.Module != tc.module || k.Device.Usable != tc.usable {
				t.Errorf("KVM = %+v, want kind %s vendor %q module %q usable %v", k, tc.kind, tc.vendor, tc.module, tc.usable)
			}
			c := r.Cgroup
			if c.Version != tc.cgroup || !slices.Equal(c.V1Controllers, tc.v1) || !slices.Equal(c.V2Controllers, tc.v2) || c.V2Path != tc.v2Path {
				t.Errorf("Cgroup = %+v, want %s v1 %v v2 %v at %q", c, tc.cgroup, tc.v1, tc.v2, tc.v2Path)
			}
			fsState := map[string]string{}
			for _, f := range r.Filesystems {
				fsState[f.Name] = f.State
			}
			if fsState["erofs"] != tc.erofs || fsState["overlay"] != tc.overlay {
				t.Errorf("filesystems %v, want erofs %s overlay %s", fsState, tc.erofs, tc.overlay)
			}
			if r.Modes.Container.OK != tc.container || !strings.Contains(r.Modes.Container.Summary, tc.containerSays) {
				t.Errorf("container verdict %+v, want ok=%v saying %q", r.Modes.Container, tc.container, tc.containerSays)
			}
			if r.Modes.VM.OK != tc.vm || !strings.Contains(r.Modes.VM.Summary, tc.vmSays) {
				t.Errorf("vm verdict %+v, want ok=%v saying %q", r.Modes.VM, tc.vm, tc.vmSays)
			}
			if tc.fixSays != "" && !strings.Contains(strings.Join(r.Modes.VM.Fix, "\n"), tc.fixSays) {
				t.Errorf("vm fixes %q do not say %q", r.Modes.VM.Fix, tc.fixSays)
			}
			for _, v := range []Verdict{r.Modes.Container, r.Modes.VM} {
				if !v.OK && len(v.Fix) == 0 {
					t.Errorf("verdict %q is a no without a fix", v.Summary)
				}
			}
			mode, reason := r.Isolation()
			if mode != tc.mode || reason == "" || r.Modes.Auto.Mode != mode {
				t.Errorf("Isolation() = %s, %q (auto %+v), want %s", mode, reason, r.Modes.Auto, tc.mode)
			}
			if r.Lab.Ready != tc.labReady {
				t.Errorf("lab ready %v, want %v (%+v, qemu %+v)", r.Lab.Ready, tc.labReady, r.Lab, r.QEMU)
			}
		})
	}
}

func TestProbeTools(t *testing.T) {
	r := Probe(context.Background(), fakeEnv(t, "intel-v2", true, []string{"runc", "qemu-system-x86_64"}))
	want := []Tool{{Name: "runc", Path: "/usr/bin/runc", Version: "1.2.3"}, {Name: "crun"}}
	if !slices.Equal(r.Runtimes, want) {
		t.Errorf("runtimes %+v, want %+v", r.Runtimes, want)
	}
	if r.QEMU.Path != "/usr/bin/qemu-system-x86_64" || r.QEMU.Version != "1.2.3" {
		t.Errorf("qemu %+v", r.QEMU)
	}
	if r.Kernel != "6.12.0-1-amd64" || !r.Root {
		t.Errorf("kernel %q root %v", r.Kernel, r.Root)
	}
	g := r.Guest
	if g.Kernel != (File{"/var/cache/hull/kernel/current/bzImage", true}) || !g.Initramfs.Exists {
		t.Errorf("guest %+v", g)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct{ in, want string }{
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n", "1.1.5+ds1"},
		{"crun version 1.8.1\ncommit: f8a096be\n", "1.8.1"},
		{"QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright", "7.2.22"},
		{"no banner here\n", ""},
		{"", ""},
		{"version", ""},
	}
	for _, tc := range tests {
		if got := parseVersion(tc.in); got != tc.want {
			t.Errorf("parseVersion(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/sys/fs/cgroup", "/sys/fs/cgroup"},
		{`/mnt/a\040b`, "/mnt/a b"},
		{`/x\\`, `/x\\`},
		{`/y\04`, `/y\04`},
	}
	for _, tc := range tests {
		if got := unescapeMount(tc.in); got != tc.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSystem probes the machine the tests run on: whatever it is, the report must be
// consistent (a kind for KVM, a verdict with a fix for every no).
func TestSystem(t *testing.T) {
	r := Probe(context.Background(), System(cache.Dir(t.TempDir())))
	if !slices.Contains([]string{KVMAbsent, KVMHardware, KVMPVM, KVMUnknown}, r.KVM.Kind) {
		t.Errorf("KVM kind %q", r.KVM.Kind)
	}
	if r.KVM.Device.Usable && r.KVM.APIVersion != KVMAPIVersion {
		t.Errorf("usable /dev/kvm with API version %d", r.KVM.APIVersion)
	}
	if r.Guest.Kernel.Exists || r.Modes.VM.OK {
		t.Errorf("an empty cache has a guest kernel or a working VM mode: %+v %+v", r.Guest, r.Modes.VM)
	}
	if r.Kernel == "" {
		t.Error("no kernel release")
	}
}
