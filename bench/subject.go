package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Subject is one way of running the bench image: hull in a mode, or a peer.
type Subject struct {
	Name  string
	Where string
	// Cmd returns a command that runs args in a fresh instance named id, with the host
	// directory vol mounted at /vol, removing the instance when it exits.
	Cmd func(ctx context.Context, id string, args []string, vol string) (*exec.Cmd, error)
	// MemPID returns the process whose tree holds a running instance's memory.
	MemPID func(ctx context.Context, id string, c *exec.Cmd) (int, error)
	// Cleanup removes whatever a killed instance left behind.
	Cleanup func(id string)
}

func ownTree(_ context.Context, _ string, c *exec.Cmd) (int, error) { return c.Process.Pid, nil }

// hullSubject runs the bench image through the hull binary in one isolation mode.
func hullSubject(hull, root, image, mode, where string) Subject {
	base := []string{"--root", root}
	return Subject{
		Name:  "hull-" + mode,
		Where: where,
		Cmd: func(ctx context.Context, id string, args []string, vol string) (*exec.Cmd, error) {
			a := append(append([]string{}, base...), "run", "--rm", "--isolation", mode, "--name", id, "-v", vol+":/vol", image)
			return exec.CommandContext(ctx, hull, append(a, args...)...), nil
		},
		MemPID:  ownTree,
		Cleanup: func(id string) { exec.Command(hull, append(append([]string{}, base...), "rm", "-f", id)...).Run() },
	}
}

// runcSubject runs the same root filesystem through `runc run` with a bundle made by
// `runc spec`, the peer hull's container mode is measured against.
func runcSubject(runc, dir, rootfs string) (Subject, error) {
	tmpl := filepath.Join(dir, "template")
	if err := os.MkdirAll(tmpl, 0o755); err != nil {
		return Subject{}, err
	}
	if out, err := exec.Command(runc, "spec", "--bundle", tmpl).CombinedOutput(); err != nil {
		return Subject{}, fmt.Errorf("runc spec: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(tmpl, "config.json"))
	if err != nil {
		return Subject{}, err
	}
	return Subject{
		Name:  "runc",
		Where: "host",
		Cmd: func(ctx context.Context, id string, args []string, vol string) (*exec.Cmd, error) {
			var s specs.Spec
			if err := json.Unmarshal(b, &s); err != nil {
				return nil, fmt.Errorf("runc spec template: %w", err)
			}
			bundle := filepath.Join(dir, id)
			if err := os.MkdirAll(bundle, 0o755); err != nil {
				return nil, err
			}
			s.Root = &specs.Root{Path: rootfs}
			s.Process.Terminal = false
			s.Process.Args = args
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "rw"}})
			out, err := json.Marshal(&s)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), out, 0o644); err != nil {
				return nil, err
			}
			return exec.CommandContext(ctx, runc, "run", "--bundle", bundle, id), nil
		},
		MemPID: ownTree,
		Cleanup: func(id string) {
			exec.Command(runc, "delete", "-f", id).Run()
			os.RemoveAll(filepath.Join(dir, id))
		},
	}, nil
}

// dockerSubject runs the image imported into a Docker engine. Its instances live under
// containerd's shim, not under the client, so memory is the shim's tree.
func dockerSubject(docker, image string) Subject {
	return Subject{
		Name:  "docker",
		Where: "host",
		Cmd: func(ctx context.Context, id string, args []string, vol string) (*exec.Cmd, error) {
			a := []string{"run", "--rm", "--name", id, "--network", "none", "-v", vol + ":/vol", image}
			return exec.CommandContext(ctx, docker, append(a, args...)...), nil
		},
		MemPID: func(ctx context.Context, id string, _ *exec.Cmd) (int, error) {
			out, err := exec.CommandContext(ctx, docker, "inspect", "-f", "{{.State.Pid}}", id).Output()
			if err != nil {
				return 0, fmt.Errorf("docker inspect %s: %w", id, err)
			}
			pid, err := ParseDockerPID(string(out))
			if err != nil {
				return 0, err
			}
			return parentOf("/proc", pid)
		},
		Cleanup: func(id string) { exec.Command(docker, "rm", "-f", id).Run() },
	}
}

// ParseDockerPID reads `docker inspect -f {{.State.Pid}}` output.
func ParseDockerPID(s string) (int, error) {
	pid, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("docker inspect: %q is not a running container's pid", strings.TrimSpace(s))
	}
	return pid, nil
}

func parentOf(proc string, pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	pp, ok := ParseStatPPID(string(b))
	if !ok {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return pp, nil
}

// ParseWorkload reads the workload's JSON lines into samples for subject; lines that are
// not JSON (a runtime's own chatter) are skipped, a JSON line without a metric is an error.
func ParseWorkload(out, subject, where string, run int) ([]Sample, error) {
	var ss []Sample
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(t, "{") {
			continue
		}
		var l struct {
			Metric string   `json:"metric"`
			Unit   string   `json:"unit"`
			Value  *float64 `json:"value"`
		}
		if err := json.Unmarshal([]byte(t), &l); err != nil {
			return nil, fmt.Errorf("workload output %q: %w", t, err)
		}
		if l.Metric == "" || l.Value == nil {
			return nil, fmt.Errorf("workload output %q: no metric or value", t)
		}
		ss = append(ss, Sample{Subject: subject, Metric: l.Metric, Unit: l.Unit, Value: *l.Value, Run: run, Where: where})
	}
	return ss, sc.Err()
}
