package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hullvm/hull/internal/testenv"
)

func labJSON(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestParseLab(t *testing.T) {
	good := &Report{Runs: 2, Baseline: "hull-vm", LabBaseline: "hull-vm", Samples: []Sample{
		{Subject: "hull-vm", Metric: "start-to-exit", Unit: "ms", Value: 5000, Where: "lab"},
		{Subject: "qemu", Metric: "boot-to-exit", Unit: "ms", Value: 9000, Where: "lab", Run: 1},
	}}
	host := &Report{Samples: []Sample{{Subject: "hull-vm", Metric: "m", Value: 1, Where: "host"}}}
	tests := []struct {
		name    string
		out     string
		samples int
		err     string
	}{
		{"framed among progress lines",
			"bench: round 1/2: hull-vm\nkvm: something\n" + LabBegin + "\n" + labJSON(t, good) + LabEnd + "\n", 2, ""},
		{"no report", "bench: round 1/2: hull-vm\nhull: import failed\n", 0, "printed no bench report"},
		{"cut short", LabBegin + "\n" + labJSON(t, good)[:40], 0, "cut short"},
		{"empty report", LabBegin + "\n" + LabEnd + "\n", 0, "wrote no report"},
		{"not JSON", LabBegin + "\nhello\n" + LabEnd + "\n", 0, "read bench report"},
		{"host samples refused", LabBegin + "\n" + labJSON(t, host) + LabEnd + "\n", 0, "not lab"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseLab(tc.out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Samples) != tc.samples || r.Samples[1] != good.Samples[1] || r.LabBaseline != "hull-vm" {
				t.Fatalf("parsed %+v", r)
			}
		})
	}
}

func FuzzParseLab(f *testing.F) {
	f.Add(LabBegin + "\n{\"samples\":[{\"subject\":\"a\",\"where\":\"lab\"}]}\n" + LabEnd)
	f.Add(LabBegin + "\n" + LabEnd)
	f.Add("noise")
	f.Add(LabBegin + "\n{\"samples\":[{\"where\":\"host\"}]}" + LabEnd + LabEnd)
	f.Fuzz(func(t *testing.T, out string) {
		r, err := ParseLab(out)
		if err != nil {
			return
		}
		for _, s := range r.Samples {
			if s.Where != "lab" {
				t.Fatalf("accepted a sample from %q", s.Where)
			}
		}
		h := &Report{Baseline: "runc"}
		h.MergeLab(r)
		var b bytes.Buffer
		if err := h.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMergeLab(t *testing.T) {
	h := &Report{Baseline: "runc", Missing: []Missing{{"docker", "no engine"}},
		Samples: []Sample{{Subject: "runc", Metric: "m", Value: 1, Where: "host"}}}
	h.MergeLab(nil)
	if len(h.Samples) != 1 || h.LabBaseline != "" || len(h.Notes) != 0 {
		t.Fatalf("merging no lab report changed the report: %+v", h)
	}
	h.MergeLab(&Report{Runs: 2, Baseline: "hull-vm",
		Missing: []Missing{{"hull-container", "host only"}, {"gokvm", "stalls"}},
		Samples: []Sample{{Subject: "hull-vm", Metric: "m", Value: 9, Where: "lab"}}})
	if len(h.Samples) != 2 || h.Samples[1].Where != "lab" {
		t.Errorf("samples %+v", h.Samples)
	}
	if h.Baseline != "runc" || h.LabBaseline != "hull-vm" {
		t.Errorf("baselines %q, %q: want runc and hull-vm", h.Baseline, h.LabBaseline)
	}
	want := []Missing{{"docker", "no engine"}, {"gokvm", "in the lab: stalls"}}
	if !slices.Equal(h.Missing, want) {
		t.Errorf("missing %v, want %v", h.Missing, want)
	}
	if len(h.Notes) != 1 || !strings.Contains(h.Notes[0], "2 rounds") {
		t.Errorf("notes %q", h.Notes)
	}
}

// TestLabScript runs the L1 script with a stand-in hull on PATH: the script must pass
// the arguments through, keep the progress on stderr out of the report, and frame the
// report so that ParseLab finds it, whatever the inner run's status.
func TestLabScript(t *testing.T) {
	sh := testenv.RequireBinary(t, "sh")
	want := &Report{Runs: 2, Baseline: "hull-vm", LabBaseline: "hull-vm",
		Samples: []Sample{{Subject: "hull-vm", Metric: "start-to-exit", Unit: "ms", Value: 5000, Where: "lab"}}}
	for _, status := range []int{0, 3} {
		dir := t.TempDir()
		report := filepath.Join(dir, "report.json")
		if err := os.WriteFile(report, []byte(labJSON(t, want)), 0o644); err != nil {
			t.Fatal(err)
		}
		args := filepath.Join(dir, "args")
		fake := "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done >" + args + "\necho 'bench: round 1/2: hull-vm' >&2\ncat " + report + "\nexit " + string(rune('0'+status)) + "\n"
		if err := os.WriteFile(filepath.Join(dir, "hull"), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		script := LabScript(LabArgs{Peers: []string{"qemu"}, Runs: 2, Density: 1, FileMB: 4,
			Busybox: "/payload/busybox", Rootfs: "/payload/it's.tar",
			Boot: &Boot{Kernel: "/k", Initrd: "/i", QEMU: "/payload/qemu", QEMUArgs: []string{"-L", "/payload"}}})
		script = strings.ReplaceAll(script, "/tmp/bench.json", filepath.Join(dir, "bench.json"))
		c := exec.Command(sh, "-c", script)
		c.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := c.CombinedOutput()
		if code := c.ProcessState.ExitCode(); code != status {
			t.Fatalf("script exited %d (%v), want %d:\n%s", code, err, status, out)
		}
		r, err := ParseLab(string(out))
		if err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(r.Samples) != 1 || r.Samples[0] != want.Samples[0] {
			t.Errorf("report %+v", r)
		}
		b, err := os.ReadFile(args)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
		for _, w := range [][]string{{"--modes", "vm"}, {"--peers", "qemu"}, {"--where", "lab"}, {"--runs", "2"},
			{"--density", "1"}, {"--file-mb", "4"}, {"--boot-qemu", "/payload/qemu"}, {"--boot-qemu-arg=-L"}, {"--boot-qemu-arg=/payload"}, {"--json"}} {
			i := slices.Index(got, w[0])
			if i < 0 || (len(w) == 2 && (i+1 >= len(got) || got[i+1] != w[1])) {
				t.Errorf("inner hull bench args %q lack %q", got, w)
			}
		}
		if !strings.Contains(string(b), "/payload/it's.tar\n") {
			t.Errorf("quoted rootfs path did not come through: %q", b)
		}
	}
}

func TestBootPairNeedsQEMUAndKVM(t *testing.T) {
	boot := &Boot{Kernel: "k", Initrd: "i", QEMU: "q", QEMUArgs: []string{"-L", "."}}
	tests := []struct {
		name    string
		c       Config
		names   []string
		missing string
	}{
		{"not asked", Config{Peers: []string{"runc"}, Boot: boot}, nil, ""},
		{"no KVM for Linux", Config{Peers: []string{"qemu"}, Boot: boot, VMReason: "KVM is PVM"}, nil, "KVM is PVM"},
		{"nothing to boot", Config{Peers: []string{"qemu"}}, nil, "no guest kernel"},
		{"pair", Config{Hull: "/hull", Peers: []string{"qemu"}, Boot: boot}, []string{"hull-vmm-boot", "qemu"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs, missing := tc.c.boots()
			var names []string
			for _, b := range bs {
				names = append(names, b.Name)
				argv := strings.Join(b.Argv, " ")
				for _, w := range []string{"k", "i", "hull.channel=/dev/hvc0"} {
					if !slices.Contains(b.Argv, w) && !strings.Contains(argv, w) {
						t.Errorf("%s argv %q lacks %q", b.Name, argv, w)
					}
				}
			}
			if b := slices.IndexFunc(bs, func(b bootSubject) bool { return b.Name == "qemu" }); b >= 0 &&
				(bs[b].Argv[0] != "q" || bs[b].Argv[1] != "-L" || bs[b].Argv[2] != ".") {
				t.Errorf("qemu argv %q does not start with the binary and its extra args", bs[b].Argv)
			}
			if !slices.Equal(names, tc.names) {
				t.Errorf("subjects %v, want %v", names, tc.names)
			}
			if tc.missing == "" && len(missing) != 0 || tc.missing != "" && (len(missing) != 1 || missing[0].Subject != "qemu" || !strings.Contains(missing[0].Reason, tc.missing)) {
				t.Errorf("missing %v, want qemu: %q", missing, tc.missing)
			}
		})
	}
}
