package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// doctorJSON mirrors the documented JSON of hull doctor (docs/doctor.md), decoded
// independently of package host so that renaming a field breaks this test.
type doctorJSON struct {
	Kernel string `json:"kernel"`
	Root   *bool  `json:"root"`
	KVM    struct {
		Kind       string     `json:"kind"`
		Vendor     string     `json:"vendor"`
		Module     string     `json:"module"`
		CPUFlag    *bool      `json:"cpu_flag"`
		Hypervisor *bool      `json:"hypervisor"`
		Device     deviceJSON `json:"device"`
		APIVersion int        `json:"api_version"`
	} `json:"kvm"`
	Cgroup struct {
		Version       string   `json:"version"`
		V1Controllers []string `json:"v1_controllers"`
		V2Path        *string  `json:"v2_path"`
		V2Controllers []string `json:"v2_controllers"`
	} `json:"cgroup"`
	Filesystems []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"filesystems"`
	Loop     deviceJSON `json:"loop"`
	Tun      deviceJSON `json:"tun"`
	Runtimes []struct {
		Name    string `json:"name"`
		Path    string `json:"path"`
		Version string `json:"version"`
	} `json:"runtimes"`
	QEMU struct {
		Name    string `json:"name"`
		Path    string `json:"path"`
		Version string `json:"version"`
	} `json:"qemu"`
	Guest struct {
		Kernel    fileJSON `json:"kernel"`
		KernelELF fileJSON `json:"kernel_elf"`
		Initramfs fileJSON `json:"initramfs"`
		Boot      string   `json:"boot"`
	} `json:"guest"`
	Lab struct {
		Kernel    fileJSON `json:"kernel"`
		KernelELF fileJSON `json:"kernel_elf"`
		Modules   fileJSON `json:"modules"`
		Busybox   fileJSON `json:"busybox"`
		Ready     *bool    `json:"ready"`
	} `json:"lab"`
	Modes struct {
		Container verdictJSON `json:"container"`
		VM        verdictJSON `json:"vm"`
		Auto      struct {
			Mode   string `json:"mode"`
			Reason string `json:"reason"`
		} `json:"auto"`
	} `json:"modes"`
}

type deviceJSON struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	Usable bool   `json:"usable"`
	Error  string `json:"error"`
}

type fileJSON struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
}

type verdictJSON struct {
	OK      *bool    `json:"ok"`
	Summary string   `json:"summary"`
	Fix     []string `json:"fix"`
}

func runHull(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return out.String(), errb.String(), code
}

// TestDoctorJSON runs hull doctor --json against this host with a cache holding only a
// guest kernel: the documented fields are there, the cache paths are the ones asked for,
// and the verdicts agree with the KVM kind.
func TestDoctorJSON(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel", "current", "bzImage")
	if err := os.MkdirAll(filepath.Dir(kernel), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kernel, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runHull(t, "--cache", dir, "doctor", "--json")
	var r doctorJSON
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("doctor --json output does not match the documented fields: %v\n%s", err, out)
	}
	ok := func(v verdictJSON) bool { return v.OK != nil && *v.OK }
	if want := map[bool]int{true: 0, false: 1}[ok(r.Modes.Container) || ok(r.Modes.VM)]; code != want {
		t.Errorf("exit status %d, want %d (stderr %q)", code, want, errs)
	}

	if r.Guest.Kernel != (fileJSON{kernel, true}) {
		t.Errorf("guest kernel %+v, want %s present", r.Guest.Kernel, kernel)
	}
	if r.Guest.Boot != kernel { // no vmlinux in this cache
		t.Errorf("guest.boot %q, want the bzImage %s", r.Guest.Boot, kernel)
	}
	if want := filepath.Join(dir, "initramfs", "current.cpio.gz"); r.Guest.Initramfs != (fileJSON{want, false}) {
		t.Errorf("initramfs %+v, want %s missing", r.Guest.Initramfs, want)
	}
	if want := filepath.Join(dir, "lab", "vmlinuz"); r.Lab.Kernel.Path != want || r.Lab.Ready == nil || *r.Lab.Ready {
		t.Errorf("lab %+v, want kernel %s and not ready", r.Lab, want)
	}
	if !slices.Contains([]string{"absent", "hardware", "pvm", "unknown"}, r.KVM.Kind) {
		t.Errorf("kvm.kind %q", r.KVM.Kind)
	}
	if r.KVM.Device.Path != "/dev/kvm" || (r.KVM.Device.Usable && r.KVM.APIVersion != 12) {
		t.Errorf("kvm device %+v api %d", r.KVM.Device, r.KVM.APIVersion)
	}
	if !slices.Contains([]string{"v1", "v2", "hybrid", "none"}, r.Cgroup.Version) || r.Cgroup.V1Controllers == nil || r.Cgroup.V2Controllers == nil {
		t.Errorf("cgroup %+v", r.Cgroup)
	}
	if len(r.Filesystems) != 3 || len(r.Runtimes) != 2 || r.QEMU.Name != "qemu-system-x86_64" {
		t.Errorf("filesystems %+v runtimes %+v qemu %+v", r.Filesystems, r.Runtimes, r.QEMU)
	}
	// No initramfs in this cache: VM mode cannot be ready, whatever the KVM.
	if ok(r.Modes.VM) {
		t.Errorf("vm verdict ok without an initramfs: %+v", r.Modes.VM)
	}
	if r.Modes.Auto.Mode != "container" || r.Modes.Auto.Reason == "" {
		t.Errorf("auto %+v, want container with a reason", r.Modes.Auto)
	}
	for name, v := range map[string]verdictJSON{"container": r.Modes.Container, "vm": r.Modes.VM} {
		if v.OK == nil || v.Summary == "" || v.Fix == nil || (!*v.OK && len(v.Fix) == 0) {
			t.Errorf("%s verdict %+v: a no must say what to do", name, v)
		}
	}
	if r.KVM.Kind == "pvm" && !strings.HasPrefix(r.Modes.VM.Summary, "PVM: only PVM guest kernels boot here") {
		t.Errorf("on a PVM host the vm verdict says %q", r.Modes.VM.Summary)
	}
}

// TestDoctorHuman checks the human report names each mode, and on this kind of host
// says what KVM is.
func TestDoctorHuman(t *testing.T) {
	jsonOut, _, _ := runHull(t, "--cache", t.TempDir(), "doctor", "--json")
	var r doctorJSON
	if err := json.Unmarshal([]byte(jsonOut), &r); err != nil {
		t.Fatal(err)
	}
	out, _, _ := runHull(t, "--cache", t.TempDir(), "doctor")
	want := []string{"Isolation modes", "  container  ", "  vm         no: ", "  auto       container: ",
		"KVM:", "Cgroups:     " + r.Cgroup.Version, "initramfs/current.cpio.gz missing: scripts/setup"}
	switch r.KVM.Kind {
	case "pvm":
		want = append(want, "KVM:         PVM (kvm_pvm)", "make lab-smoke")
	case "absent":
		want = append(want, "no /dev/kvm")
	case "hardware":
		want = append(want, "KVM:         hardware")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("doctor output lacks %q:\n%s", w, out)
		}
	}
}

func TestDoctorArgs(t *testing.T) {
	if _, errs, code := runHull(t, "doctor", "extra"); code != exitHull || !strings.Contains(errs, "doctor") {
		t.Errorf("doctor extra: status %d, stderr %q; want %d and a usage error", code, errs, exitHull)
	}
}
