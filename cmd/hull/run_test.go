package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/container/containertest"
	"github.com/hullvm/hull/host"
	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/kvm"
)

// With HULL_TEST_MAIN=1 the test binary is hull itself, so the tests (and the shims
// that detached containers start through os.Executable) run the real command line.
func TestMain(m *testing.M) {
	if os.Getenv("HULL_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr})
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// cli is a state directory holding the busybox image, and how to run hull on it. Its
// containers' cgroups go under a cgroup parent of its own, so leaks are seen.
type cli struct {
	dir, root string
	cgroup    string
}

func newCLI(t testing.TB) *cli {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireLoop(t)
	testenv.RequireBinary(t, "runc")
	tarBin := testenv.RequireBinary(t, "tar")
	dir := t.TempDir()
	c := &cli{dir: dir, root: filepath.Join(dir, "state"), cgroup: "hulltest-" + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(filepath.Dir(dir))}
	tree := containertest.BusyboxTree(t, dir)
	tarball := filepath.Join(dir, "busybox.tar")
	if out, err := exec.Command(tarBin, "-C", tree, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	if code, _, errs := c.hull(t, "", "import", "-c", `CMD ["sh"]`, tarball, "busybox"); code != 0 {
		t.Fatalf("import: %d %s", code, errs)
	}
	t.Cleanup(func() { c.checkClean(t) })
	return c
}

// cmd returns the command that runs hull with args on c's state directory.
func (c *cli) cmd(args ...string) *exec.Cmd {
	self, _ := os.Executable()
	x := exec.Command(self, append([]string{"--root", c.root}, args...)...)
	x.Env = append(os.Environ(), "HULL_TEST_MAIN=1")
	return x
}

// hull runs hull with args and stdin, and returns its status, stdout and stderr.
func (c *cli) hull(t testing.TB, stdin string, args ...string) (int, string, string) {
	t.Helper()
	x := c.cmd(args...)
	var out, errb bytes.Buffer
	x.Stdin, x.Stdout, x.Stderr = strings.NewReader(stdin), &out, &errb
	err := x.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("hull %q: %v", args, err)
	}
	return x.ProcessState.ExitCode(), out.String(), errb.String()
}

// checkClean removes what is left and fails on leaked mounts, loop devices, cgroups
// or runtime state.
func (c *cli) checkClean(t testing.TB) {
	t.Helper()
	if _, out, _ := c.hull(t, "", "ps", "-aq", "--no-trunc"); out != "" {
		c.hull(t, "", append([]string{"rm", "-f"}, strings.Fields(out)...)...)
	}
	if leaks := containertest.Leaks(t, c.dir); len(leaks) > 0 {
		t.Errorf("left behind: %v", leaks)
	}
	for _, rt := range []string{"runc", "crun"} {
		if ents, _ := os.ReadDir(filepath.Join(c.root, "runtime", rt)); len(ents) > 0 {
			t.Errorf("%s state left: %v", rt, ents)
		}
	}
	left, _ := filepath.Glob("/sys/fs/cgroup/*/" + c.cgroup + "/*/cgroup.procs")
	left2, _ := filepath.Glob("/sys/fs/cgroup/" + c.cgroup + "/*/cgroup.procs")
	for _, p := range append(left, left2...) {
		t.Errorf("cgroup left: %s", filepath.Dir(p))
	}
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/" + c.cgroup)
	for _, p := range append(parents, "/sys/fs/cgroup/"+c.cgroup) {
		os.Remove(p)
	}
}

func TestRunCLI(t *testing.T) {
	c := newCLI(t)
	vol := t.TempDir()
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
		err   string // in stderr
	}{
		{name: "status and output", args: []string{"--isolation=container", "busybox", "sh", "-c", "echo $((6*7)); exit 3"}, code: 3, out: "42\n"},
		{name: "auto says why", args: []string{"busybox", "true"}, err: "hull: container isolation: "},
		{name: "env workdir user hostname", args: []string{"--isolation", "container", "-e", "A=1", "-e", "HULL_TEST_MAIN", "-w", "/srv", "-u", "app", "--hostname", "h1", "busybox", "sh", "-c", `echo $A $HULL_TEST_MAIN $(pwd) $(id -u):$(id -g) $(hostname)`}, out: "1 1 /srv 1000:1000 h1\n"},
		{name: "stdin", args: []string{"--isolation", "container", "-i", "busybox", "wc", "-l"}, stdin: "a\nb\nc\n", out: "3\n"},
		{name: "no stdin without -i", args: []string{"--isolation", "container", "busybox", "wc", "-c"}, stdin: "abc", out: "0\n"},
		{name: "volume write", args: []string{"--isolation", "container", "-v", vol + ":/v", "busybox", "sh", "-c", "echo data > /v/f"}},
		{name: "volume survives", args: []string{"--isolation", "container", "-v", vol + ":/v:ro", "busybox", "cat", "/v/f"}, out: "data\n"},
		{name: "oom", args: []string{"--isolation", "container", "--memory", "16m", "busybox", "sh", "-c", "head -c 64m /dev/zero | tail"}, code: 137},
		{name: "cpus", args: []string{"--isolation", "container", "--cpus", "1.5", "busybox", "sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"}, out: "150000\n"},
		{name: "host network", args: []string{"--isolation", "container", "--network", "host", "busybox", "sh", "-c", "test -e /sys/class/net/lo && ls /sys/class/net | wc -l | grep -qv '^1$' && echo many"}, out: "many\n"},
		{name: "not found", args: []string{"--isolation", "container", "busybox", "nonexistent"}, code: 127, err: "not found"},
		{name: "cannot exec", args: []string{"--isolation", "container", "busybox", "/etc/passwd"}, code: 126},
		{name: "bad isolation", args: []string{"--isolation", "vz", "busybox", "true"}, code: 125, err: "use auto, container or vm"},
		{name: "no image", args: []string{"--isolation", "container", "--pull", "never", "nosuchimage", "true"}, code: 125, err: "hull pull"},
		{name: "no image, no registry", args: []string{"--isolation", "container", "127.0.0.1:1/nosuchimage", "true"}, code: 125, err: "hull load"},
		{name: "bad memory", args: []string{"--memory", "lots", "busybox", "true"}, code: 125, err: "--memory"},
		// Found unknown only once the root filesystem is mounted (and runc launched):
		// the half-made container goes, and hull does not crash.
		{name: "unknown user", args: []string{"--isolation", "container", "-u", "nosuchuser", "busybox", "true"}, code: 125, err: "nosuchuser"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := c.hull(t, tt.stdin, append([]string{"run", "--rm", "--cgroup-parent", c.cgroup}, tt.args...)...)
			if code != tt.code || out != tt.out || !strings.Contains(errs, tt.err) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q, stderr with %q", code, out, errs, tt.code, tt.out, tt.err)
			}
		})
	}
	if _, out, _ := c.hull(t, "", "ps", "-aq"); out != "" {
		t.Errorf("--rm left containers: %q", out)
	}
}

// crun works except on hybrid cgroup hosts whose v2 hierarchy has controllers (this
// build machine), where hull says so before making anything.
func TestCrun(t *testing.T) {
	c := newCLI(t)
	testenv.RequireBinary(t, "crun")
	cg := host.Probe(context.Background(), host.System("/nonexistent")).Cgroup
	refused := cg.Version == host.CgroupHybrid && len(cg.V2Controllers) > 0
	want := map[bool]struct {
		code     int
		out, err string
	}{false: {0, "hi\n", ""}, true: {125, "", "use --runtime runc"}}[refused]
	code, out, errs := c.hull(t, "", "run", "--rm", "--cgroup-parent", c.cgroup, "--isolation", "container", "--runtime", "crun", "busybox", "echo", "hi")
	if code != want.code || out != want.out || !strings.Contains(errs, want.err) {
		t.Errorf("crun (hybrid with v2 controllers: %v): %d %q %q, want %d %q %q", refused, code, out, errs, want.code, want.out, want.err)
	}
}

func TestContainerIsolation(t *testing.T) {
	c := newCLI(t)
	if code, _, errs := c.hull(t, "", "run", "--cgroup-parent", c.cgroup, "--isolation", "container", "--name", "first", "busybox", "sh", "-c", "echo secret > /root/f"); code != 0 {
		t.Fatalf("first: %d %s", code, errs)
	}
	code, out, _ := c.hull(t, "", "run", "--cgroup-parent", c.cgroup, "--rm", "--isolation", "container", "busybox", "sh", "-c", "cat /root/f 2>/dev/null || echo absent")
	if code != 0 || out != "absent\n" {
		t.Errorf("second container sees %q (%d), want absent", out, code)
	}
	if code, _, errs := c.hull(t, "", "run", "--cgroup-parent", c.cgroup, "--isolation", "container", "--name", "first", "busybox", "true"); code != 125 || !strings.Contains(errs, "already in use") {
		t.Errorf("reused name: %d %q", code, errs)
	}
	_, out, _ = c.hull(t, "", "ps", "-a")
	if !strings.Contains(out, "Exited (0)") || !strings.Contains(out, "first") {
		t.Errorf("ps -a:\n%s", out)
	}
	if code, _, errs := c.hull(t, "", "rm", "first"); code != 0 {
		t.Errorf("rm: %d %s", code, errs)
	}
}

func TestDetachedCLI(t *testing.T) {
	c := newCLI(t)
	code, out, errs := c.hull(t, "", "run", "--cgroup-parent", c.cgroup, "-d", "--isolation", "container", "--name", "web", "busybox", "sh", "-c", `trap 'echo bye; exit 7' TERM; echo hello; while :; do sleep 0.1; done`)
	id := strings.TrimSpace(out)
	if code != 0 || len(id) != 64 {
		t.Fatalf("run -d: %d %q %s", code, out, errs)
	}
	waitFor(t, func() bool { _, out, _ := c.hull(t, "", "logs", "web"); return out == "hello\n" })
	_, out, _ = c.hull(t, "", "ps")
	if !strings.Contains(out, id[:12]) || !strings.Contains(out, "Up ") {
		t.Errorf("ps:\n%s", out)
	}
	if code, out, _ := c.hull(t, "", "exec", "web", "sh", "-c", "echo $((1+1)); exit 5"); code != 5 || out != "2\n" {
		t.Errorf("exec: %d %q", code, out)
	}
	// Without --hostname, the container's host name is its short ID, as in Docker.
	if code, out, _ := c.hull(t, "", "exec", "web", "hostname"); code != 0 || out != id[:12]+"\n" {
		t.Errorf("hostname: %d %q, want %q", code, out, id[:12])
	}
	// Docker's /etc files: the host name in /etc/hostname, localhost in /etc/hosts.
	if code, out, _ := c.hull(t, "", "exec", "web", "sh", "-c", "cat /etc/hostname; ping -c1 -W1 localhost >/dev/null && echo localhost-ok"); code != 0 || out != id[:12]+"\nlocalhost-ok\n" {
		t.Errorf("/etc/hostname and localhost: %d %q", code, out)
	}
	if code, _, errs := c.hull(t, "", "rm", "web"); code != 125 || !strings.Contains(errs, "running") {
		t.Errorf("rm of a running container: %d %q", code, errs)
	}
	if code, _, errs := c.hull(t, "", "stop", "-t", "10", id[:12]); code != 0 {
		t.Fatalf("stop: %d %s", code, errs)
	}
	if _, out, _ := c.hull(t, "", "logs", "-f", "web"); out != "hello\nbye\n" {
		t.Errorf("logs -f: %q", out)
	}
	var st []struct {
		Status   string `json:"status"`
		ExitCode int    `json:"exit_code"`
	}
	_, out, _ = c.hull(t, "", "inspect", "web")
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 || st[0].Status != "exited" || st[0].ExitCode != 7 {
		t.Errorf("inspect: %v %+v", err, st)
	}
	if code, _, errs := c.hull(t, "", "rm", "web"); code != 0 {
		t.Fatalf("rm: %d %s", code, errs)
	}
	if code, _, _ := c.hull(t, "", "inspect", "web"); code != 125 {
		t.Errorf("inspect after rm: %d", code)
	}
}

func TestCreateStartKill(t *testing.T) {
	c := newCLI(t)
	code, out, errs := c.hull(t, "", "create", "--cgroup-parent", c.cgroup, "--isolation", "container", "busybox", "sleep", "1000")
	id := strings.TrimSpace(out)
	if code != 0 || len(id) != 64 {
		t.Fatalf("create: %d %q %s", code, out, errs)
	}
	if _, out, _ := c.hull(t, "", "ps", "-a"); !strings.Contains(out, "Created") {
		t.Errorf("ps -a after create:\n%s", out)
	}
	if code, _, errs := c.hull(t, "", "start", id[:5]); code != 0 {
		t.Fatalf("start: %d %s", code, errs)
	}
	if code, _, errs := c.hull(t, "", "kill", "-s", "TERM", id); code != 0 {
		t.Fatalf("kill: %d %s", code, errs)
	}
	time.Sleep(100 * time.Millisecond) // sleep as PID 1 has no TERM handler: it must survive
	if _, out, _ := c.hull(t, "", "ps"); !strings.Contains(out, id[:12]) {
		t.Errorf("a TERM without a handler killed PID 1:\n%s", out)
	}
	if code, _, errs := c.hull(t, "", "kill", id); code != 0 {
		t.Fatalf("kill: %d %s", code, errs)
	}
	waitFor(t, func() bool { _, out, _ := c.hull(t, "", "ps", "-a"); return strings.Contains(out, "Exited (137)") })
	if code, _, errs := c.hull(t, "", "rm", id); code != 0 {
		t.Fatalf("rm: %d %s", code, errs)
	}
}

// A kill -9 of the foreground hull leaves the container running; ps says so, and once
// the container is killed it shows as exited with an unknown status; rm reclaims it.
func TestKilledHull(t *testing.T) {
	c := newCLI(t)
	x := c.cmd("run", "--cgroup-parent", c.cgroup, "--isolation", "container", "--name", "orphan", "busybox", "sleep", "1000")
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, out, _ := c.hull(t, "", "ps"); return strings.Contains(out, "orphan") })
	x.Process.Kill()
	x.Wait()
	if _, out, _ := c.hull(t, "", "ps"); !strings.Contains(out, "orphan") || !strings.Contains(out, "Up ") {
		t.Errorf("after kill -9 of hull run, ps:\n%s", out)
	}
	if code, _, errs := c.hull(t, "", "kill", "orphan"); code != 0 {
		t.Fatalf("kill: %d %s", code, errs)
	}
	waitFor(t, func() bool { _, out, _ := c.hull(t, "", "ps", "-a"); return strings.Contains(out, "Exited (unknown)") })
	if code, _, errs := c.hull(t, "", "rm", "orphan"); code != 0 {
		t.Fatalf("rm: %d %s", code, errs)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 300 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition never met")
}

func TestDecideIsolation(t *testing.T) {
	vm := func() (string, string) { return host.VM, "KVM works" }
	ct := func() (string, string) { return host.Container, "no KVM" }
	tests := []struct {
		flag    string
		hostNet bool
		probe   func() (string, string)
		mode    string
		why     string
		bad     bool
	}{
		{flag: "container", probe: vm, mode: container.IsolationContainer},
		{flag: "container", hostNet: true, probe: vm, mode: container.IsolationContainer},
		{flag: "auto", probe: ct, mode: container.IsolationContainer, why: "container isolation: no KVM"},
		{flag: "", probe: vm, mode: container.IsolationVM, why: "VM isolation: KVM works"},
		{flag: "auto", hostNet: true, probe: vm, mode: container.IsolationContainer, why: "container isolation: --network host shares the host's network, which a VM container cannot"},
		{flag: "vm", probe: ct, mode: container.IsolationVM},
		{flag: "vm", hostNet: true, probe: vm, bad: true},
		{flag: "gvisor", probe: vm, bad: true},
	}
	for _, tt := range tests {
		mode, why, err := decideIsolation(tt.flag, tt.hostNet, tt.probe)
		if mode != tt.mode || why != tt.why || (err != nil) != tt.bad {
			t.Errorf("decideIsolation(%q, host network %v) = %q, %q, %v; want %q, %q, error %v", tt.flag, tt.hostNet, mode, why, err, tt.mode, tt.why, tt.bad)
		}
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		bad  bool
	}{
		{in: "KILL", want: syscall.SIGKILL}, {in: "sigterm", want: syscall.SIGTERM}, {in: "SIGHUP", want: syscall.SIGHUP},
		{in: "9", want: syscall.SIGKILL}, {in: "0", bad: true}, {in: "65", bad: true}, {in: "NOPE", bad: true},
	}
	for _, tt := range tests {
		got, err := parseSignal(tt.in)
		if got != tt.want || (err != nil) != tt.bad {
			t.Errorf("parseSignal(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// BenchmarkRun compares `hull run --rm --isolation container busybox true` (the whole
// command line: image lookup, overlay, bundle, runtime, removal) with `runc run` of the
// same bundle (the config.json hull wrote, seccomp profile and all, over the same root
// filesystem), and, when a Docker engine answers, with `docker run --rm` of the same
// busybox tree twice: as the issue states it (Docker's default network, a bridge with
// NAT: docker-ratio) and with `--network none`, hull's default (docker-none-ratio),
// alternating them in the same run. ratio is hull's median over runc's.
//
// The hull timed is the binary `make build` makes (static, CGO_ENABLED=0 -trimpath),
// built here, not this test binary: that one is linked against the C library (cgo is
// on for tests), and the dynamic loader alone costs it about a millisecond a start.
func BenchmarkRun(b *testing.B) {
	c := newCLI(b)
	hullBin := filepath.Join(b.TempDir(), "hull")
	build := exec.Command("go", "build", "-trimpath", "-o", hullBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build hull: %v: %s", err, out)
	}
	code, out, errs := c.hull(b, "", "create", "--cgroup-parent", c.cgroup, "--isolation", "container", "busybox", "true")
	if code != 0 {
		b.Fatalf("create: %s", errs)
	}
	id := strings.TrimSpace(out)
	runcBin := testenv.RequireBinary(b, "runc")
	state := filepath.Join(c.dir, "peer-runc")
	docker := dockerImage(b, filepath.Join(c.dir, "busybox.tar"))
	var hullT, runcT, dockerT, dockerNoneT []time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		run := exec.Command(hullBin, "--root", c.root, "run", "--cgroup-parent", c.cgroup, "--rm", "--isolation", "container", "busybox", "true")
		if out, err := run.CombinedOutput(); err != nil {
			b.Fatalf("hull run: %v: %s", err, out)
		}
		hullT = append(hullT, time.Since(t0))
		t0 = time.Now()
		peer := exec.Command(runcBin, "--root", state, "run", "--bundle", filepath.Join(c.root, "containers", id), "peer"+strconv.Itoa(i))
		if out, err := peer.CombinedOutput(); err != nil {
			b.Fatalf("runc run: %v: %s", err, out)
		}
		runcT = append(runcT, time.Since(t0))
		if docker == nil {
			continue
		}
		t0 = time.Now()
		if out, err := docker.run().CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v: %s", err, out)
		}
		dockerT = append(dockerT, time.Since(t0))
		t0 = time.Now()
		if out, err := docker.run("--network", "none").CombinedOutput(); err != nil {
			b.Fatalf("docker run --network none: %v: %s", err, out)
		}
		dockerNoneT = append(dockerNoneT, time.Since(t0))
	}
	b.StopTimer()
	h, r := median(hullT), median(runcT)
	b.ReportMetric(float64(h.Microseconds())/1000, "hull-ms")
	b.ReportMetric(float64(r.Microseconds())/1000, "runc-ms")
	b.ReportMetric(h.Seconds()/r.Seconds(), "ratio")
	if len(dockerT) > 0 {
		d := median(dockerT)
		b.ReportMetric(float64(d.Microseconds())/1000, "docker-ms")
		b.ReportMetric(h.Seconds()/d.Seconds(), "docker-ratio")
		n := median(dockerNoneT)
		b.ReportMetric(float64(n.Microseconds())/1000, "docker-none-ms")
		b.ReportMetric(h.Seconds()/n.Seconds(), "docker-none-ratio")
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average: %s", strings.Join(strings.Fields(string(l))[:3], " "))
	}
	b.ReportMetric(0, "ns/op")
}

// dockerPeer runs the benchmark's busybox image under Docker.
type dockerPeer struct{ bin, image string }

func (d *dockerPeer) run(flags ...string) *exec.Cmd {
	args := append(append([]string{"run", "--rm"}, flags...), d.image, "true")
	return exec.Command(d.bin, args...)
}

// dockerImage imports the busybox tarball into the Docker engine as an image of its
// own, removed when the benchmark ends, or returns nil (and says why) when no engine
// answers: Docker is an optional peer (scripts/docker-up starts one).
func dockerImage(b *testing.B, tarball string) *dockerPeer {
	b.Helper()
	bin := "/usr/bin/docker"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("docker"); err != nil {
			b.Log("no docker client: no Docker peer")
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		b.Logf("no Docker engine answers (%v: %s): no Docker peer; scripts/docker-up starts one", err, bytes.TrimSpace(out))
		return nil
	}
	image := "hull-benchrun:" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command(bin, "import", tarball, image).CombinedOutput(); err != nil {
		b.Fatalf("docker import: %v: %s", err, out)
	}
	b.Cleanup(func() { exec.Command(bin, "rmi", "--force", image).Run() })
	return &dockerPeer{bin: bin, image: image}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// openPty returns a new pseudo-terminal's master (non-blocking, so read deadlines
// work) and slave.
func openPty(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	master := os.NewFile(uintptr(fd), "ptmx")
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave
}

// readUntil reads r until its output contains want.
func readUntil(t *testing.T, r *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	r.SetReadDeadline(time.Now().Add(20 * time.Second))
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("terminal output %q, never %q: %v", got, want, err)
		}
	}
	return string(got)
}

// -it: the container gets a terminal of hull's size, keys reach it raw (the host
// terminal is in raw mode), resizes follow, and the status is the container's.
func TestTerminal(t *testing.T) {
	c := newCLI(t)
	master, slave := openPty(t)
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101}); err != nil {
		t.Fatal(err)
	}
	x := c.cmd("run", "--rm", "--cgroup-parent", c.cgroup, "--isolation", "container", "--name", "tty1", "-it", "busybox",
		"sh", "-c", `trap 'echo caught' INT; while read -r line; do eval "$line"; done`)
	x.Stdin, x.Stdout, x.Stderr = slave, slave, slave
	x.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	master.WriteString("tty; stty size\r")
	readUntil(t, master, "/dev/pts/0\r\n33 101")
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
		t.Fatal(err)
	}
	// SIGWINCH reaches hull, which resizes the container's terminal: ask until it shows.
	resized := false
	var seen []byte
	buf := make([]byte, 4096)
	for i := 0; i < 100 && !resized; i++ {
		master.WriteString("stty size\r")
		master.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for !resized {
			n, err := master.Read(buf)
			seen = append(seen, buf[:n]...)
			resized = bytes.Contains(seen, []byte("40 120"))
			if err != nil {
				break
			}
		}
	}
	if !resized {
		t.Errorf("after a resize to 40x120 the container's terminal says %q", seen)
	}
	// Ctrl-C is a byte in raw mode: it reaches the container's terminal, which
	// interrupts the foreground sleep and runs the shell's INT trap.
	master.WriteString("sleep 100\r")
	waitFor(t, func() bool { code, _, _ := c.hull(t, "", "exec", "tty1", "pidof", "sleep"); return code == 0 })
	master.WriteString("\x03")
	readUntil(t, master, "caught\r\n")
	master.WriteString("exit 5\r")
	err := x.Wait()
	if x.ProcessState.ExitCode() != 5 {
		t.Errorf("hull run -it exited %v, want 5", err)
	}
}

// TestRunVMRefusedOnPVM: on a PVM host (these build machines) hull's guest kernel
// cannot boot, so --isolation vm is refused up front with the reason, instead of a VM
// that hangs without a word; auto picks container mode and says why.
func TestRunVMRefusedOnPVM(t *testing.T) {
	if !kvm.IsPVM() {
		t.Skip("not a PVM host: VM mode boots here")
	}
	c := newCLI(t)
	code, _, errs := c.hull(t, "", "run", "--rm", "--cgroup-parent", c.cgroup, "--isolation", "vm", "busybox", "true")
	if code != 125 || !strings.Contains(errs, "PVM") || !strings.Contains(errs, "--isolation container") {
		t.Fatalf("run --isolation vm on PVM = %d, %q; want 125 saying why and what to do", code, errs)
	}
	code, out, errs := c.hull(t, "", "run", "--rm", "--cgroup-parent", c.cgroup, "busybox", "echo", "picked")
	if code != 0 || strings.TrimSpace(out) != "picked" || !strings.Contains(errs, "container isolation") {
		t.Fatalf("run (auto) on PVM = %d, %q, %q; want container mode, said", code, out, errs)
	}
	if _, out, _ := c.hull(t, "", "ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("containers left behind: %q", out)
	}
}

// hull run pulls an image it does not store from its registry first (--pull missing,
// Docker's default), checks the registry every time with --pull always, and never
// with --pull never; the registry is Debian's docker-registry.
func TestRunPull(t *testing.T) {
	c := newCLI(t)
	reg := testenv.Registry(t)
	ref := reg + "/hull/bb:1"
	for _, args := range [][]string{{"tag", "busybox", ref}, {"push", ref}, {"rmi", ref}} {
		if code, _, errs := c.hull(t, "", args...); code != 0 {
			t.Fatalf("%v: %d %s", args, code, errs)
		}
	}
	run := func(pull, ref string, cmd ...string) (int, string, string) {
		return c.hull(t, "", append([]string{"run", "--rm", "--cgroup-parent", c.cgroup, "--isolation", "container", "--pull", pull, ref}, cmd...)...)
	}
	if code, _, errs := run("never", ref, "true"); code != 125 || !strings.Contains(errs, "image not found") || strings.Contains(errs, "Unable to find") {
		t.Errorf("--pull never of an image not stored: %d %q; want 125, not found, no pull", code, errs)
	}
	code, out, errs := run("missing", ref, "echo", "pulled")
	if code != 0 || out != "pulled\n" || !strings.Contains(errs, "Unable to find image '"+ref+"' locally") || !strings.Contains(errs, "Status: Image is up to date for "+ref) {
		t.Fatalf("--pull missing of an image not stored: %d %q %q; want it pulled and run", code, out, errs)
	}
	if _, out, _ := c.hull(t, "", "images"); !strings.Contains(out, reg+"/hull/bb") {
		t.Errorf("the pulled image is not listed:\n%s", out)
	}
	if code, out, errs := run("missing", ref, "echo", "again"); code != 0 || out != "again\n" || strings.Contains(errs, "Unable to find") {
		t.Errorf("--pull missing of a stored image: %d %q %q; want it run without a pull", code, out, errs)
	}
	if code, out, _ := run("always", ref, "echo", "fresh"); code != 0 || out != "fresh\n" {
		t.Errorf("--pull always: %d %q", code, out)
	}
	// A stored image whose registry does not answer: missing runs it, always fails.
	gone := "127.0.0.1:1/hull/bb:1"
	if code, _, errs := c.hull(t, "", "tag", "busybox", gone); code != 0 {
		t.Fatal(errs)
	}
	if code, out, _ := run("missing", gone, "echo", "stored"); code != 0 || out != "stored\n" {
		t.Errorf("--pull missing of a stored image with no registry: %d %q", code, out)
	}
	if code, _, errs := run("always", gone, "true"); code != 125 || !strings.Contains(errs, "127.0.0.1:1") {
		t.Errorf("--pull always with no registry: %d %q; want 125 naming the registry", code, errs)
	}
	if code, _, errs := run("sometimes", ref, "true"); code != 125 || !strings.Contains(errs, "missing, always or never") {
		t.Errorf("--pull sometimes: %d %q", code, errs)
	}
}
