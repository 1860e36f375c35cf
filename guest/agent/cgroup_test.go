package agent

import (
	"log/slog"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestMemoryCgroupSkipped checks the cases where the agent leaves a memory limit to the
// VM's RAM: no limit, no cgroup folder, a folder that is not a cgroup2 mount. (The limit
// itself is exercised in the guest by container/microvm's lab test: --memory → 137.)
func TestMemoryCgroupSkipped(t *testing.T) {
	limit := int64(32 << 20)
	withLimit := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}}}
	for _, tt := range []struct {
		name   string
		cgroup string
		spec   *specs.Spec
	}{
		{"no linux section", "/sys/fs/cgroup", &specs.Spec{}},
		{"no limit", "/sys/fs/cgroup", &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{}}}},
		{"no cgroup folder", "", withLimit},
		{"not cgroup2", t.TempDir(), withLimit},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &Agent{Log: slog.New(slog.DiscardHandler), Cgroup: tt.cgroup}
			dir, f, err := a.memoryCgroup(tt.spec)
			if err != nil || f != nil || dir != "" {
				t.Errorf("memoryCgroup = %q, %v, %v; want \"\", nil, nil", dir, f, err)
			}
		})
	}
}
