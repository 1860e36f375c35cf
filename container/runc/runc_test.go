package runc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hullvm/hull/bundle"
	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/container/containertest"
	"github.com/hullvm/hull/internal/testenv"
)

// The test binary doubles as the shim of detached containers: with HULL_TEST_SHIM set
// it supervises the container named by its last argument.
func TestMain(m *testing.M) {
	if root := os.Getenv("HULL_TEST_SHIM"); root != "" {
		mgr := manager(root, nil)
		if err := container.Subreaper(); err != nil {
			os.Exit(125)
		}
		err := mgr.Supervise(context.Background(), os.Args[len(os.Args)-1], os.NewFile(3, "ready"))
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func manager(root string, images container.ImageSource) *container.Manager {
	self, _ := os.Executable()
	return &container.Manager{
		Root:   root,
		Images: images,
		Runtime: func(name string) (container.Runtime, error) {
			return New(name, filepath.Join(root, "runc"))
		},
		Shim: []string{"/usr/bin/env", "HULL_TEST_SHIM=" + root, self, "-test.run=^$"},
	}
}

// env is one test's state directory and image.
type env struct {
	root   string
	m      *container.Manager
	launch bool // run launches runc while it creates the container (Config.Launch)
}

func setup(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireLoop(t)
	testenv.RequireBinary(t, "runc")
	dir := t.TempDir()
	images := containertest.Busybox(t, dir)
	if err := container.Subreaper(); err != nil {
		t.Fatal(err)
	}
	e := &env{root: filepath.Join(dir, "state"), m: nil}
	e.m = manager(e.root, images)
	t.Cleanup(func() {
		all, _ := e.m.List(context.Background())
		for _, c := range all {
			if err := e.m.Remove(context.Background(), c.ID, true); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if leaks := containertest.Leaks(t, dir); len(leaks) > 0 {
			t.Errorf("left behind: %v", leaks)
		}
		if ents, _ := os.ReadDir(filepath.Join(e.root, "runc")); len(ents) > 0 {
			t.Errorf("runc state left: %v", ents)
		}
	})
	return e
}

// run creates and runs a container in the foreground and returns its status and output.
func (e *env) run(t *testing.T, cfg container.Config, stdin string) (int, string, string) {
	t.Helper()
	if cfg.Image == "" {
		cfg.Image = "busybox"
	}
	if cfg.Runtime == "" {
		cfg.Runtime = "runc"
	}
	cfg.Isolation = container.IsolationContainer
	ctx := context.Background()
	var out, errb bytes.Buffer
	stdio := container.IO{Out: &out, Err: &errb}
	if stdin != "" {
		stdio.In = strings.NewReader(stdin)
	}
	if e.launch {
		cfg.Launch = &stdio
	}
	c, err := e.m.Create(ctx, cfg)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	code, err := e.m.Run(ctx, c, stdio, container.Signals{})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return code, out.String(), errb.String()
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func TestRun(t *testing.T) {
	e := setup(t)
	dataDir := t.TempDir()
	tests := []struct {
		name  string
		opts  bundle.Options
		stdin string
		code  int
		out   string
	}{
		{name: "status and output", opts: bundle.Options{Args: sh("echo $((6*7)); echo err >&2; exit 3")}, code: 3, out: "42\n"},
		{name: "env", opts: bundle.Options{Args: sh(`echo "$FOO $BAR"`), Env: []string{"FOO=foo", "BAR=b=r"}}, out: "foo b=r\n"},
		{name: "workdir", opts: bundle.Options{Args: []string{"pwd"}, Workdir: "/tmp/made"}, out: "/tmp/made\n"},
		{name: "numeric user", opts: bundle.Options{Args: sh("id -u; id -g"), User: "1234:5678"}, out: "1234\n5678\n"},
		{name: "user by name", opts: bundle.Options{Args: sh("id -u; id -G"), User: "app"}, out: "1000\n1000 50\n"},
		{name: "hostname", opts: bundle.Options{Args: []string{"hostname"}, Hostname: "boxy"}, out: "boxy\n"},
		{name: "stdin", opts: bundle.Options{Args: []string{"tr", "a-z", "A-Z"}}, stdin: "piped in\n", out: "PIPED IN\n"},
		{name: "write volume", opts: bundle.Options{Args: sh("echo kept > /data/f"), Mounts: []bundle.Mount{{Source: dataDir, Destination: "/data"}}}},
		{name: "read volume", opts: bundle.Options{Args: sh("cat /data/f; echo x > /data/g || echo ro"), Mounts: []bundle.Mount{{Source: dataDir, Destination: "/data", ReadOnly: true}}}, out: "kept\nro\n"},
		{name: "no network but loopback", opts: bundle.Options{Args: sh("ls /sys/class/net")}, out: "lo\n"},
		{name: "memory limit kills", opts: bundle.Options{Args: sh("head -c 64m /dev/zero | tail >/dev/null"), Memory: 16 << 20}, code: 137},
		{name: "memory under limit", opts: bundle.Options{Args: sh("head -c 8m /dev/zero | tail | wc -c"), Memory: 256 << 20}, out: "8388608\n"},
		{name: "cpus", opts: bundle.Options{Args: sh("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"), CPUs: 0.5}, out: "50000\n"},
	}
	for _, launch := range []bool{false, true} {
		e.launch = launch
		for _, tt := range tests {
			name := tt.name
			if launch {
				name += " (launched early)"
			}
			t.Run(name, func(t *testing.T) {
				cfg := container.Config{Remove: true, Bundle: tt.opts}
				code, out, _ := e.run(t, cfg, tt.stdin)
				if code != tt.code || out != tt.out {
					t.Errorf("status %d output %q, want %d %q", code, out, tt.code, tt.out)
				}
			})
		}
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, "f")); err != nil || string(b) != "kept\n" {
		t.Errorf("volume after the containers: %q, %v", b, err)
	}
	if all, _ := e.m.List(context.Background()); len(all) != 0 {
		t.Errorf("--rm left %d containers", len(all))
	}
}

func TestWritableLayerIsPrivate(t *testing.T) {
	e := setup(t)
	code, _, _ := e.run(t, container.Config{Bundle: bundle.Options{Args: sh("echo secret > /etc/mine")}}, "")
	if code != 0 {
		t.Fatalf("writer exited %d", code)
	}
	code, out, _ := e.run(t, container.Config{Remove: true, Bundle: bundle.Options{Args: sh("cat /etc/mine 2>/dev/null || echo absent")}}, "")
	if code != 0 || out != "absent\n" {
		t.Errorf("second container: %d %q, want the file absent", code, out)
	}
	all, _ := e.m.List(context.Background())
	if len(all) != 1 || all[0].Status != container.Exited || all[0].ExitCode != 0 {
		t.Fatalf("containers = %+v, want the first one exited 0", all)
	}
	if err := e.m.Remove(context.Background(), all[0].ShortID(), false); err != nil {
		t.Fatal(err)
	}
}

func TestDetached(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	c, err := e.m.Create(ctx, container.Config{Image: "busybox", Name: "web", Runtime: "runc", Detach: true,
		Bundle: bundle.Options{Args: sh(`trap 'echo bye; exit 7' TERM; echo hello; while true; do sleep 0.1; done`)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(ctx, container.Config{Image: "busybox", Name: "web", Runtime: "runc"}); !errors.Is(err, container.ErrNameInUse) {
		t.Errorf("second container named web: %v, want ErrNameInUse", err)
	}
	if err := e.m.StartDetached(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := e.m.Get(ctx, c.ID[:12])
	if err != nil || got.Status != container.Running || got.Name != "web" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if err := e.m.Remove(ctx, "web", false); !errors.Is(err, container.ErrRunning) {
		t.Errorf("rm of a running container: %v, want ErrRunning", err)
	}
	waitLog(t, e.m, "web", "hello\n")
	st, err := e.m.Stop(ctx, "web", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != container.Exited || st.ExitCode != 7 {
		t.Errorf("after stop: %s %d, want exited 7", st.Status, st.ExitCode)
	}
	var logs bytes.Buffer
	if err := e.m.Logs(ctx, "web", true, &logs); err != nil || logs.String() != "hello\nbye\n" {
		t.Errorf("logs -f = %q, %v", logs.String(), err)
	}
	if err := e.m.Remove(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Get(ctx, "web"); !errors.Is(err, container.ErrNotFound) {
		t.Errorf("after rm: %v", err)
	}
}

func waitLog(t *testing.T, m *container.Manager, ref, want string) {
	t.Helper()
	for range 500 {
		var b bytes.Buffer
		m.Logs(context.Background(), ref, false, &b)
		if b.String() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("log of %s never became %q", ref, want)
}

func TestExecKillAndDeadSupervisor(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	c, err := e.m.Create(ctx, container.Config{Image: "busybox", Runtime: "runc", Detach: true, Bundle: bundle.Options{Args: []string{"sleep", "1000"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.StartDetached(ctx, c); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := e.m.Exec(ctx, c.Name, container.ExecConfig{Args: sh("echo in $(hostname | wc -c); exit 4"), User: "app"}, container.IO{Out: &out})
	if err != nil || code != 4 || !strings.HasPrefix(out.String(), "in ") {
		t.Errorf("exec: %d %q %v", code, out.String(), err)
	}
	// kill -9 the shim: the container goes on, and ps still tells the truth.
	shim := shimPid(t, c.ID)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got, _ := e.m.Get(ctx, c.ID); got.Status != container.Running {
		t.Errorf("after killing the shim: %s, want running", got.Status)
	}
	if err := e.m.Kill(ctx, c.ID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var got *container.Container
	for range 500 {
		if got, _ = e.m.Get(ctx, c.ID); got.Status == container.Exited {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got.Status != container.Exited || got.ExitCode != container.ExitUnknown {
		t.Errorf("container of a dead shim after kill: %s %d, want exited, unknown status", got.Status, got.ExitCode)
	}
	if err := e.m.Remove(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
}

// shimPid finds the shim process supervising container id.
func shimPid(t *testing.T, id string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("-test.run=^$\x00"+id)) {
			continue
		}
		var pid int
		for _, ch := range strings.Split(p, "/")[2] {
			pid = pid*10 + int(ch-'0')
		}
		return pid
	}
	t.Fatal("no shim process")
	return 0
}

func TestRunErrors(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name string
		args []string
		want error
	}{
		{name: "missing", args: []string{"/nonexistent"}, want: container.ErrCommandNotFound},
		{name: "not on PATH", args: []string{"nonexistent"}, want: container.ErrCommandNotFound},
		{name: "not executable", args: []string{"/etc/passwd"}, want: container.ErrCannotExec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, err := e.m.Create(ctx, container.Config{Image: "busybox", Runtime: "runc", Remove: true, Bundle: bundle.Options{Args: tt.args}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.m.Run(ctx, c, container.IO{}, container.Signals{}); !errors.Is(err, tt.want) {
				t.Errorf("run %q: %v, want %v", tt.args, err, tt.want)
			}
			if _, err := e.m.Get(ctx, c.ID); !errors.Is(err, container.ErrNotFound) {
				t.Errorf("--rm container left after a failed start: %v", err)
			}
		})
	}
}

// notify is a writer that closes ready at the first write.
type notify struct {
	n     int
	ready chan struct{}
}

func (n *notify) Write(p []byte) (int, error) {
	if n.n == 0 && len(p) > 0 {
		close(n.ready)
	}
	n.n += len(p)
	return len(p), nil
}

func TestSignalForwarding(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name   string
		script string
		sig    syscall.Signal
		code   int
	}{
		{name: "trapped TERM", script: `trap 'exit 9' TERM; echo ready; while :; do sleep 0.05; done`, sig: syscall.SIGTERM, code: 9},
		{name: "trapped INT", script: `trap 'exit 4' INT; echo ready; while :; do sleep 0.05; done`, sig: syscall.SIGINT, code: 4},
		{name: "KILL", script: `echo ready; sleep 1000`, sig: syscall.SIGKILL, code: 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, err := e.m.Create(ctx, container.Config{Image: "busybox", Runtime: "runc", Remove: true, Bundle: bundle.Options{Args: sh(tt.script)}})
			if err != nil {
				t.Fatal(err)
			}
			out := &notify{ready: make(chan struct{})}
			sigs := make(chan os.Signal, 1)
			go func() {
				<-out.ready
				sigs <- tt.sig
			}()
			code, err := e.m.Run(ctx, c, container.IO{Out: out}, container.Signals{Signal: sigs})
			if err != nil || code != tt.code {
				t.Errorf("status %d, %v; want %d", code, err, tt.code)
			}
		})
	}
}

// runcOf reports the runc processes working on container id.
func runcOf(t *testing.T, id string) []string {
	t.Helper()
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(id)) && bytes.Contains(b, []byte("runc")) {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// A container whose creation fails after runc was launched for it leaves no runc
// behind, and one that starts fails as it would without the launch.
func TestLaunchFailures(t *testing.T) {
	e := setup(t)
	e.launch = true
	ctx := context.Background()
	var out bytes.Buffer
	stdio := container.IO{Out: &out, Err: &out}
	// The user is looked up after the launch, in the mounted root filesystem.
	_, err := e.m.Create(ctx, container.Config{Image: "busybox", Runtime: "runc", Name: "nouser", Remove: true,
		Isolation: container.IsolationContainer, Launch: &stdio, Bundle: bundle.Options{Args: []string{"true"}, User: "nosuchuser"}})
	if err == nil {
		t.Fatal("create with an unknown user succeeded")
	}
	if all, _ := e.m.List(ctx); len(all) != 0 {
		t.Errorf("failed create left %d containers", len(all))
	}
	c, err := e.m.Create(ctx, container.Config{Image: "busybox", Runtime: "runc", Remove: true,
		Isolation: container.IsolationContainer, Launch: &stdio, Bundle: bundle.Options{Args: []string{"nosuchcommand"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Run(ctx, c, stdio, container.Signals{}); !errors.Is(err, container.ErrCommandNotFound) {
		t.Errorf("run of a missing command: %v, want ErrCommandNotFound", err)
	}
	if left := runcOf(t, c.ID); len(left) > 0 {
		t.Errorf("runc left running: %q", left)
	}
}

// Abort stops a launched runc before and after it has its configuration, and deletes
// a container it had already created.
func TestLaunchAbort(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	r, err := New("runc", filepath.Join(e.root, "runc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, feed := range []bool{false, true} {
		pid := 0
		c, err := e.m.Create(ctx, container.Config{Image: "busybox", Runtime: "runc", Isolation: container.IsolationContainer,
			Bundle: bundle.Options{Args: sh("sleep 1000")}})
		if err != nil {
			t.Fatal(err)
		}
		l, err := r.Launch(ctx, c, container.IO{})
		if err != nil || l == nil {
			t.Fatalf("launch: %v, %v", l, err)
		}
		if feed {
			spec, err := bundle.Read(c.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Feed(spec); err != nil {
				t.Fatal(err)
			}
			// Let runc get as far as creating the container.
			for i := 0; i < 500 && pid == 0; i++ {
				pid, _ = readPid(pidPath(c))
				time.Sleep(10 * time.Millisecond)
			}
			if pid == 0 {
				t.Fatal("runc made no container process in 5 s")
			}
		}
		l.Abort()
		if pid != 0 && running(pid) {
			t.Errorf("the container's process %d outlived Abort", pid)
		}
		if left := runcOf(t, c.ID); len(left) > 0 {
			t.Errorf("fed %v: runc left running: %q", feed, left)
		}
		if _, err := os.Stat(filepath.Join(e.root, "runc", c.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("fed %v: runc's state left: %v", feed, err)
		}
		if _, err := os.Stat(filepath.Join(c.Dir, launchDir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("fed %v: launch directory left: %v", feed, err)
		}
		if err := e.m.Remove(ctx, c.ID, true); err != nil {
			t.Fatal(err)
		}
	}
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, rest, ok := bytes.Cut(b, []byte(") "))
	return ok && len(rest) > 0 && rest[0] != 'Z' && rest[0] != 'X'
}
