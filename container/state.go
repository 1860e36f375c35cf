package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/bundle"
)

// Status is a container's lifecycle state, as Docker names them.
type Status string

// The statuses a container goes through.
const (
	Created Status = "created" // prepared, process not started
	Running Status = "running"
	Exited  Status = "exited"
)

// Isolation modes.
const (
	IsolationContainer = "container"
	IsolationVM        = "vm"
)

// ExitUnknown is the exit code recorded when the supervising process died before it
// could collect the container's status.
const ExitUnknown = -1

// Sentinel errors callers branch on.
var (
	ErrNotFound   = errors.New("no such container")
	ErrAmbiguous  = errors.New("container ID prefix is ambiguous")
	ErrNameInUse  = errors.New("container name already in use")
	ErrRunning    = errors.New("container is running")
	ErrNotRunning = errors.New("container is not running")
	// ErrCommandNotFound and ErrCannotExec are a container command that does not exist
	// or cannot be executed (Docker's exit statuses 127 and 126).
	ErrCommandNotFound = errors.New("command not found in the container")
	ErrCannotExec      = errors.New("command cannot be executed in the container")
)

// State is a container's record, stored as state.json.
type State struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Image     string    `json:"image"`    // the reference the user gave
	ImageID   string    `json:"image_id"` // the image's config digest
	Disks     []string  `json:"disks"`    // layer disks, lowest first
	Isolation string    `json:"isolation"`
	Runtime   string    `json:"runtime"` // runc, crun, vm
	Command   []string  `json:"command"` // the process's args, for ps
	Created   time.Time `json:"created"`
	Remove    bool      `json:"remove,omitempty"` // --rm
	Detach    bool      `json:"detach,omitempty"`
	TTY       bool      `json:"tty,omitempty"`
	Status    Status    `json:"status"`
	Pid       int       `json:"pid,omitempty"`
	PidStart  uint64    `json:"pid_start,omitempty"` // the process's start time in /proc/PID/stat
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	ExitCode  int       `json:"exit_code"`
	OOMKilled bool      `json:"oom_killed,omitempty"`
}

// ShortID is the 12-character prefix Docker shows.
func (s *State) ShortID() string { return s.ID[:min(12, len(s.ID))] }

// Container is a container's state and its directory.
type Container struct {
	State
	Dir string `json:"-"` // ROOT/containers/ID: also the bundle directory

	launched Launched // the runtime Create started early (Config.Launch), until Run
}

// Files in a container's directory.
const (
	stateFile = "state.json"
	// LogFile holds a detached container's output.
	LogFile = "container.log"
)

// Log returns the path of the container's log.
func (c *Container) Log() string { return filepath.Join(c.Dir, LogFile) }

// Rootfs returns the path of the container's root filesystem.
func (c *Container) Rootfs() string { return filepath.Join(c.Dir, bundle.RootfsDir) }

// save replaces the stored state atomically.
func (c *Container) save() error {
	b, err := json.MarshalIndent(&c.State, "", "\t")
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", c.ShortID(), err)
	}
	return bundle.WriteFileAtomic(filepath.Join(c.Dir, stateFile), b, 0o600)
}

// saveNew writes the first state into a directory nobody sees yet, in place: on a
// filesystem without a journal each new inode costs a scan past the recently deleted
// ones, and the temporary file of an atomic replace is one more.
func (c *Container) saveNew() error {
	b, err := json.MarshalIndent(&c.State, "", "\t")
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", c.ShortID(), err)
	}
	return os.WriteFile(filepath.Join(c.Dir, stateFile), b, 0o600)
}

// lock takes the container's exclusive lock, waiting for ctx: a lock on its
// directory, so no lock file is made (and removed) per container.
func (c *Container) lock(ctx context.Context) (func(), error) {
	return flock(ctx, c.Dir, os.O_RDONLY)
}

// flock takes an exclusive lock on path opened with flag (O_CREATE makes it),
// waiting for ctx.
func flock(ctx context.Context, path string, flag int) (func(), error) {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// newID returns a random 64-hex container ID.
func newID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("container id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ValidateName checks a container name as Docker does: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at
// most 128 characters. (Checked by hand: the regexp's {0,127} compiles into a large
// program at every hull start.)
func ValidateName(n string) error {
	ok := len(n) > 0 && len(n) <= 128 && nameChar(n[0], false)
	for i := 1; ok && i < len(n); i++ {
		ok = nameChar(n[i], true)
	}
	if !ok {
		return fmt.Errorf("invalid container name %q: use letters, digits, _ . - (starting with a letter or digit, at most 128)", n)
	}
	return nil
}

// nameChar reports whether b may be in a container name; punct allows _ . -.
func nameChar(b byte, punct bool) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return punct && (b == '_' || b == '.' || b == '-')
}

// randomName returns an adjective_noun name.
func randomName(id string) string {
	adj := strings.Fields("brave calm eager fancy gentle happy jolly keen lively merry nimble proud quiet rapid silly swift tender vivid witty zesty")
	noun := strings.Fields("otter falcon badger heron lynx marmot newt osprey panda quokka raven shrew tapir viper walrus yak zebra gecko ibis koala")
	n, _ := strconv.ParseUint(id[:8], 16, 64)
	return adj[n%uint64(len(adj))] + "_" + noun[(n/uint64(len(adj)))%uint64(len(noun))] + "_" + id[8:12]
}

// containersDir is where the containers live under the state directory.
func containersDir(root string) string { return filepath.Join(root, "containers") }

// load reads the container in dir.
func load(dir string) (*Container, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	c := &Container{Dir: dir}
	if err := json.Unmarshal(b, &c.State); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dir, stateFile), err)
	}
	if c.ID != filepath.Base(dir) {
		return nil, fmt.Errorf("%s: state names container %q", dir, c.ID)
	}
	return c, nil
}

// list returns every container with a readable state, oldest first.
func list(root string) ([]*Container, error) {
	ents, err := os.ReadDir(containersDir(root))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() || len(e.Name()) != 64 {
			continue
		}
		c, err := load(filepath.Join(containersDir(root), e.Name()))
		if err != nil {
			continue // being created or removed
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// find returns the container named by ref: its name, full ID or a unique ID prefix.
func find(root, ref string) (*Container, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty name", ErrNotFound)
	}
	all, err := list(root)
	if err != nil {
		return nil, err
	}
	var match []*Container
	for _, c := range all {
		if c.ID == ref || c.Name == ref {
			return c, nil
		}
		if strings.HasPrefix(c.ID, ref) {
			match = append(match, c)
		}
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("%w: %s (see hull ps -a)", ErrNotFound, ref)
	case 1:
		return match[0], nil
	}
	return nil, fmt.Errorf("%w: %s matches %d containers: give more of the ID or the name", ErrAmbiguous, ref, len(match))
}

// procStart returns the start time (clock ticks after boot) of process pid, or false
// when it does not exist or is a zombie.
func procStart(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStat(b)
}

// parseStat reads the state and start time from a /proc/PID/stat line.
func parseStat(b []byte) (uint64, bool) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	n, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// alive reports whether the container's recorded process still runs.
func (c *Container) alive() bool {
	st, ok := procStart(c.Pid)
	return ok && st == c.PidStart
}
