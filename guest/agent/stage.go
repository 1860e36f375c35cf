package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/guest"
)

// defaultPath is the PATH used when the spec's env has none (Docker's and runc's).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// rlimit maps an OCI rlimit name to its resource.
func rlimit(name string) (int, bool) {
	switch name {
	case "RLIMIT_AS":
		return unix.RLIMIT_AS, true
	case "RLIMIT_CORE":
		return unix.RLIMIT_CORE, true
	case "RLIMIT_CPU":
		return unix.RLIMIT_CPU, true
	case "RLIMIT_DATA":
		return unix.RLIMIT_DATA, true
	case "RLIMIT_FSIZE":
		return unix.RLIMIT_FSIZE, true
	case "RLIMIT_LOCKS":
		return unix.RLIMIT_LOCKS, true
	case "RLIMIT_MEMLOCK":
		return unix.RLIMIT_MEMLOCK, true
	case "RLIMIT_MSGQUEUE":
		return unix.RLIMIT_MSGQUEUE, true
	case "RLIMIT_NICE":
		return unix.RLIMIT_NICE, true
	case "RLIMIT_NOFILE":
		return unix.RLIMIT_NOFILE, true
	case "RLIMIT_NPROC":
		return unix.RLIMIT_NPROC, true
	case "RLIMIT_RSS":
		return unix.RLIMIT_RSS, true
	case "RLIMIT_RTPRIO":
		return unix.RLIMIT_RTPRIO, true
	case "RLIMIT_RTTIME":
		return unix.RLIMIT_RTTIME, true
	case "RLIMIT_SIGPENDING":
		return unix.RLIMIT_SIGPENDING, true
	case "RLIMIT_STACK":
		return unix.RLIMIT_STACK, true
	}
	return 0, false
}

// InExecStage reports whether this process is the agent re-executed as the exec stage;
// main (and a test binary's TestMain) then calls ExecStage first thing.
func InExecStage() bool { return os.Getenv(stageEnv) == "exec" }

// ExecStage applies the config read from fd 3 and execs the container's process. It
// returns only by exiting.
func ExecStage() {
	conn := os.NewFile(stageFd, "stage")
	err := execStage(conn)
	// Only failures get here.
	se := stageError{Reason: guest.ReasonSetup, Message: err.Error()}
	var f *failure
	if errors.As(err, &f) {
		se.Reason = f.reason
	}
	b, _ := json.Marshal(se)
	conn.Write(b)
	os.Exit(1)
}

func execStage(conn *os.File) error {
	b, err := io.ReadAll(io.LimitReader(conn, maxConfig+1))
	if err != nil {
		return fmt.Errorf("read exec config: %w", err)
	}
	if len(b) > maxConfig {
		return fmt.Errorf("exec config over %d bytes", maxConfig)
	}
	var c execConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("decode exec config: %w", err)
	}
	unix.CloseOnExec(stageFd)
	for _, r := range c.Rlimits {
		res, ok := rlimit(r.Type)
		if !ok {
			return fmt.Errorf("unknown rlimit %q", r.Type)
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("set %s to %d/%d: %w", r.Type, r.Soft, r.Hard, err)
		}
	}
	if c.Root != "" && c.Root != "/" {
		if err := unix.Chroot(c.Root); err != nil {
			return fmt.Errorf("chroot %s: %w", c.Root, err)
		}
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	if err := unix.Chdir(c.Cwd); err != nil {
		return fmt.Errorf("chdir to cwd %q: %w", c.Cwd, err)
	}
	groups := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", c.Groups, err)
	}
	if err := syscall.Setgid(int(c.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", c.GID, err)
	}
	if err := syscall.Setuid(int(c.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", c.UID, err)
	}
	if c.Umask != nil {
		unix.Umask(int(*c.Umask & 0o777))
	}
	if c.NoNewPrv {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	if len(c.Args) == 0 {
		return errors.New("no args")
	}
	p, err := lookPath(c.Args[0], envPath(c.Env))
	if err != nil {
		return err
	}
	err = syscall.Exec(p, c.Args, c.Env)
	return execFailure(c.Args[0], p, err)
}

// execFailure classifies an execve error as runc and Docker do: a missing file
// (including a missing script interpreter) is 127, anything else 126.
func execFailure(name, p string, err error) error {
	if errors.Is(err, unix.ENOENT) {
		return fail(guest.ReasonNotFound, fmt.Errorf("exec %s: %s: %w", name, p, err))
	}
	return fail(guest.ReasonCannotExec, fmt.Errorf("exec %s: %s: %w", name, p, err))
}

func envPath(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := cutEnv(env[i], "PATH"); ok {
			return v
		}
	}
	return defaultPath
}

// lookPath finds name as the shell would in the current root: a name with a slash is
// taken as is, others are searched in pathEnv. A file found but not executable is 126;
// nothing found is 127.
func lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", err
		}
		return name, nil
	}
	var denied error
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, name)
		err := executable(p)
		if err == nil {
			return p, nil
		}
		var f *failure
		if denied == nil && errors.As(err, &f) && f.reason == guest.ReasonCannotExec {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", fail(guest.ReasonNotFound, fmt.Errorf("exec %s: executable file not found in $PATH", name))
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(guest.ReasonNotFound, fmt.Errorf("exec %s: no such file or directory", p))
	}
	if err != nil {
		return fail(guest.ReasonCannotExec, fmt.Errorf("exec %s: %w", p, err))
	}
	if fi.IsDir() {
		return fail(guest.ReasonCannotExec, fmt.Errorf("exec %s: is a directory", p))
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return fail(guest.ReasonCannotExec, fmt.Errorf("exec %s: permission denied", p))
	}
	return nil
}
