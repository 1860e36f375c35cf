package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/guest"
)

// The exec stage: the agent starts the process by re-executing itself with stageEnv
// set. The stage reads an execConfig from fd 3 (a socketpair), applies what Go's
// ForkExec cannot (rlimits before the user switch, umask, no_new_privs), chroots, looks
// the command up in the container's PATH and execs it. If anything fails it writes a
// stageError to fd 3 and exits; a successful exec closes fd 3 (close-on-exec), which the
// agent reads as success. That is how "not found" (127) and "cannot execute" (126)
// reach the host as themselves.
const (
	stageEnv = "HULL_INIT_STAGE"
	stageFd  = 3
	// maxConfig caps the exec stage's config (the spec's args and env).
	maxConfig = 2 << 20
)

// execConfig is what the exec stage applies, in order.
type execConfig struct {
	Root     string              `json:"root"`
	Cwd      string              `json:"cwd"`
	Args     []string            `json:"args"`
	Env      []string            `json:"env"`
	UID      uint32              `json:"uid"`
	GID      uint32              `json:"gid"`
	Groups   []uint32            `json:"groups,omitempty"`
	Umask    *uint32             `json:"umask,omitempty"`
	Rlimits  []specs.POSIXRlimit `json:"rlimits,omitempty"`
	NoNewPrv bool                `json:"noNewPrivileges,omitempty"`
}

type stageError struct {
	Reason  guest.Reason `json:"reason"`
	Message string       `json:"message"`
}

type output struct {
	kind guest.Kind
	f    *os.File
}

// process is a started container process and the agent's ends of its stdio.
type process struct {
	pid      int
	status   <-chan unix.WaitStatus // from the reaper, once it has exited
	stdin    *os.File               // nil when the process reads /dev/null
	master   *os.File               // the terminal, when there is one
	terminal bool
	outs     []output
}

func (p *process) close() {
	for _, o := range p.outs {
		o.f.Close()
	}
	if p.master != nil {
		p.master.Close()
	}
}

// proc is a process to start: the main process of a Run or an exec'd one.
type proc struct {
	root   string
	spec   *specs.Process
	stdin  bool     // the host sends stdin
	debug  bool     // put the debug tools first on PATH
	cgroup *os.File // the memory cgroup to start in, or nil
}

// start runs the exec stage for pr in its root and waits until it has exec'd.
func (a *Agent) start(pr proc) (*process, *failure) {
	sp := pr.spec
	root := pr.root
	cfg := execConfig{
		Root: root, Cwd: sp.Cwd, Args: sp.Args, Env: sp.Env,
		UID: sp.User.UID, GID: sp.User.GID, Groups: sp.User.AdditionalGids, Umask: sp.User.Umask,
		Rlimits: sp.Rlimits, NoNewPrv: sp.NoNewPrivileges,
	}
	if cfg.Cwd == "" {
		cfg.Cwd = "/"
	}
	if pr.debug && a.Tools != "" {
		cfg.Env = withPath(cfg.Env, "/.hull/bin")
	}
	for _, r := range cfg.Rlimits {
		if _, ok := rlimit(r.Type); !ok {
			return nil, fail(guest.ReasonSetup, fmt.Errorf("unknown rlimit %q", r.Type))
		}
	}
	cfgb, err := json.Marshal(cfg)
	if err != nil {
		return nil, fail(guest.ReasonSetup, err)
	}

	var (
		p        = &process{terminal: sp.Terminal}
		child    []*os.File // the child's fds 0, 1, 2
		sys      = &syscall.SysProcAttr{Setsid: true}
		cleanups []*os.File
	)
	defer func() {
		for _, f := range cleanups {
			f.Close()
		}
	}()
	if sp.Terminal {
		m, s, err := a.openTerminal(root)
		if err != nil {
			return nil, fail(guest.ReasonSetup, err)
		}
		if b := sp.ConsoleSize; b != nil {
			setWinsize(m, guest.Winsize{Rows: uint16(min(b.Height, 0xffff)), Cols: uint16(min(b.Width, 0xffff))})
		}
		p.master, p.stdin = m, m
		p.outs = []output{{guest.KindStdout, m}}
		child = []*os.File{s, s, s}
		cleanups = append(cleanups, s)
		sys.Setctty = true
		sys.Ctty = 0
	} else {
		var in *os.File
		if pr.stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, fail(guest.ReasonSetup, err)
			}
			in, p.stdin = r, w
		} else {
			in, err = os.Open(filepath.Join(a.Dev, "null"))
			if err != nil {
				return nil, fail(guest.ReasonSetup, fmt.Errorf("open /dev/null: %w", err))
			}
		}
		or, ow, err := os.Pipe()
		if err != nil {
			return nil, fail(guest.ReasonSetup, err)
		}
		er, ew, err := os.Pipe()
		if err != nil {
			return nil, fail(guest.ReasonSetup, err)
		}
		p.outs = []output{{guest.KindStdout, or}, {guest.KindStderr, er}}
		child = []*os.File{in, ow, ew}
		cleanups = append(cleanups, in, ow, ew)
	}

	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fail(guest.ReasonSetup, fmt.Errorf("socketpair: %w", err))
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "stage"), os.NewFile(uintptr(pair[1]), "stage-child")
	defer mine.Close()
	cleanups = append(cleanups, theirs)

	if pr.cgroup != nil {
		sys.UseCgroupFD, sys.CgroupFD = true, int(pr.cgroup.Fd())
	}

	fds := []uintptr{child[0].Fd(), child[1].Fd(), child[2].Fd(), theirs.Fd()}
	pid, status, err := a.reaper().fork(func() (int, error) {
		return syscall.ForkExec(a.Self, []string{"hull-init", "exec"}, &syscall.ProcAttr{
			Env:   []string{stageEnv + "=exec"},
			Files: fds,
			Sys:   sys,
		})
	})
	if err != nil {
		p.close()
		return nil, fail(guest.ReasonSetup, fmt.Errorf("start exec stage %s: %w", a.Self, err))
	}
	theirs.Close()
	cleanups = cleanups[:len(cleanups)-1]

	_, werr := mine.Write(cfgb)
	unix.Shutdown(int(mine.Fd()), unix.SHUT_WR)
	reply, rerr := io.ReadAll(io.LimitReader(mine, 64<<10))
	if werr != nil || rerr != nil || len(reply) > 0 {
		ws := <-status
		p.close()
		var se stageError
		if len(reply) == 0 || json.Unmarshal(reply, &se) != nil || se.Reason == "" {
			return nil, fail(guest.ReasonSetup, fmt.Errorf("exec stage failed (write %v, read %v, status %v)", werr, rerr, ws))
		}
		return nil, fail(se.Reason, fmt.Errorf("%s", se.Message))
	}
	p.pid, p.status = pid, status
	return p, nil
}

// withPath prepends dir to PATH in env.
func withPath(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	found := false
	for _, e := range env {
		if v, ok := cutEnv(e, "PATH"); ok {
			e = "PATH=" + dir + ":" + v
			found = true
		}
		out = append(out, e)
	}
	if !found {
		out = append(out, "PATH="+dir+":"+defaultPath)
	}
	return out
}

func cutEnv(e, key string) (string, bool) {
	if len(e) > len(key) && e[:len(key)] == key && e[len(key)] == '=' {
		return e[len(key)+1:], true
	}
	return "", false
}

// openTerminal opens a terminal pair for a process in root: from the container's own
// devpts when one is mounted at its /dev/pts (a runc-style mount list mounts a new
// instance there), so that the process finds its terminal as /dev/pts/N; else from the
// agent's /dev (a container whose /dev is the guest's).
func (a *Agent) openTerminal(root string) (master, slave *os.File, err error) {
	if pts, err := inRoot(root, "/dev/pts"); err == nil {
		var st unix.Statfs_t
		if unix.Statfs(pts, &st) == nil && st.Type == unix.DEVPTS_SUPER_MAGIC {
			return openPty(filepath.Join(pts, "ptmx"), pts)
		}
	}
	return openPty(filepath.Join(a.Dev, "ptmx"), filepath.Join(a.Dev, "pts"))
}

// openPty opens a new terminal pair from ptmx, whose devpts is mounted at pts.
func openPty(ptmx, pts string) (master, slave *os.File, err error) {
	m, err := os.OpenFile(ptmx, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open ptmx: %w", err)
	}
	var n uint32
	err = control(m, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		var err error
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
	})
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	s, err := os.OpenFile(filepath.Join(pts, fmt.Sprint(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty %d: %w", n, err)
	}
	return m, s, nil
}

func setWinsize(f *os.File, ws guest.Winsize) error {
	return control(f, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols})
	})
}

// control runs fn on f's descriptor without taking f out of the poller (as Fd would).
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// memoryCgroup makes the cgroup that applies the spec's memory limit and returns its
// path and the folder opened, for the exec stage to start in (clone3
// CLONE_INTO_CGROUP), or "" and nil when the spec has no limit or the guest has no
// cgroup v2 with the memory controller. Exec'd processes start in it too.
func (a *Agent) memoryCgroup(spec *specs.Spec) (string, *os.File, error) {
	if spec.Linux == nil || spec.Linux.Resources == nil || spec.Linux.Resources.Memory == nil {
		return "", nil, nil
	}
	m := spec.Linux.Resources.Memory
	if m.Limit == nil || *m.Limit <= 0 {
		return "", nil, nil
	}
	var st unix.Statfs_t
	if a.Cgroup == "" || unix.Statfs(a.Cgroup, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		a.Log.Warn("memory limit not applied: no cgroup v2 in the guest", "limit", *m.Limit)
		return "", nil, nil
	}
	// Enabling a controller for the children fails only when the kernel lacks it.
	if err := os.WriteFile(filepath.Join(a.Cgroup, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
		a.Log.Warn("memory limit not applied: no memory controller in the guest kernel", "err", err)
		return "", nil, nil
	}
	dir := filepath.Join(a.Cgroup, "hull-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("memory cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(strconv.FormatInt(*m.Limit, 10)), 0); err != nil {
		return "", nil, fmt.Errorf("memory limit %d: %w", *m.Limit, err)
	}
	// No swap beyond the limit (the guest has none anyway; the file exists with CONFIG_SWAP).
	os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0)
	f, err := os.Open(dir)
	if err != nil {
		return "", nil, fmt.Errorf("memory cgroup: %w", err)
	}
	return dir, f, nil
}
