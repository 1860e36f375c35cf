package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/profiles/seccomp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Network modes. None gives the container its own network namespace with only the
// loopback interface (Docker's --network none); Host shares the host's.
const (
	NetworkNone = "none"
	NetworkHost = "host"
)

// RootfsDir is the root filesystem's path inside a bundle directory (OCI runtime-spec,
// "Filesystem Bundle": config.json's root.path is relative to the bundle).
const RootfsDir = "rootfs"

// ConfigFile is the runtime-spec configuration's name inside a bundle directory.
const ConfigFile = "config.json"

// Version is the runtime-spec version the bundle declares. Every field Build sets
// exists in 1.0.2, and older runtimes (crun 1.8) refuse newer versions.
const Version = "1.0.2"

// ErrNoCommand is returned when neither the image nor the user names a command.
var ErrNoCommand = errors.New("no command specified: the image has no Entrypoint or Cmd; give one after the image name")

// Mount is a bind mount from the host into the container (-v SRC:DST[:ro]).
type Mount struct {
	Source      string // absolute host path
	Destination string // absolute container path
	ReadOnly    bool
}

// Options are the user's run options that shape the bundle, as Docker's flags mean them.
// The zero value runs the image's own command as its own user.
type Options struct {
	Args     []string // replaces the image's Cmd (kept after its Entrypoint)
	Env      []string // K=V, override the image's variables of the same name
	Workdir  string   // absolute; replaces the image's WorkingDir
	User     string   // uid[:gid] or name[:group]; replaces the image's User
	Hostname string
	Terminal bool
	Memory   int64   // bytes; 0 is unlimited
	CPUs     float64 // CPUs' worth of time; 0 is unlimited
	Network  string  // NetworkNone (default) or NetworkHost
	Mounts   []Mount
	// CgroupNS gives the container its own cgroup namespace, as Docker does on
	// cgroup v2 hosts.
	CgroupNS bool
	// CgroupsPath is the container's cgroup, passed to the runtime as is.
	CgroupsPath string
	// NoSwapLimit leaves the memory+swap limit out, for hosts without swap accounting
	// (cgroup v1 without memory.memsw.*), as Docker does.
	NoSwapLimit bool
	// Passwd and Group are the image's /etc/passwd and /etc/group, used to resolve
	// user and group names; nil when the image has none.
	Passwd, Group []byte
}

// Validate checks the options that do not depend on the image.
func (o *Options) Validate() error {
	if o.Workdir != "" && !filepath.IsAbs(o.Workdir) {
		return fmt.Errorf("working directory %q is not absolute: give a path starting with /", o.Workdir)
	}
	if o.Memory < 0 {
		return fmt.Errorf("memory limit %d is negative", o.Memory)
	}
	if o.Memory > 0 && o.Memory < 6<<20 {
		return fmt.Errorf("memory limit %d bytes is too small: the minimum is 6m, as for Docker", o.Memory)
	}
	if o.CPUs < 0 || o.CPUs > 4096 {
		return fmt.Errorf("cpus %g is out of range: give a number of CPUs such as 1.5", o.CPUs)
	}
	switch o.Network {
	case "", NetworkNone, NetworkHost:
	default:
		return fmt.Errorf("network %q is not supported: use none or host", o.Network)
	}
	for _, e := range o.Env {
		if k, _, _ := strings.Cut(e, "="); k == "" {
			return fmt.Errorf("environment variable %q has no name: use K=V", e)
		}
	}
	for _, m := range o.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("volume %s:%s: both paths must be absolute", m.Source, m.Destination)
		}
		if filepath.Clean(m.Destination) == "/" {
			return fmt.Errorf("volume %s:%s: cannot mount over the container's root", m.Source, m.Destination)
		}
	}
	return nil
}

// Build returns the runtime-spec configuration that runs img with o: the image's
// process (Entrypoint, Cmd, Env, WorkingDir, User) amended by o, Docker's default
// capabilities, seccomp profile, mounts, masked and read-only paths, and namespaces.
// The root filesystem is RootfsDir in the bundle directory.
func Build(img ocispec.Image, o Options) (*specs.Spec, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	args := append(append([]string{}, img.Config.Entrypoint...), img.Config.Cmd...)
	if len(o.Args) > 0 {
		args = append(append([]string{}, img.Config.Entrypoint...), o.Args...)
	}
	if len(args) == 0 {
		return nil, ErrNoCommand
	}
	userSpec := o.User
	if userSpec == "" {
		userSpec = img.Config.User
	}
	user, err := LookupUser(userSpec, o.Passwd, o.Group)
	if err != nil {
		return nil, err
	}
	cwd := img.Config.WorkingDir
	if o.Workdir != "" {
		cwd = o.Workdir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !filepath.IsAbs(cwd) {
		return nil, fmt.Errorf("image working directory %q is not absolute", cwd)
	}
	env := mergeEnv(img.Config.Env, o.Env, o.Hostname, o.Terminal)

	caps := DefaultCapabilities()
	s := &specs.Spec{
		Version: Version,
		Process: &specs.Process{
			Terminal: o.Terminal,
			User:     user,
			Args:     args,
			Env:      env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: append([]string{}, caps...),
				Permitted: append([]string{}, caps...),
			},
		},
		Root:     &specs.Root{Path: RootfsDir},
		Hostname: o.Hostname,
		Mounts:   defaultMounts(),
		Linux: &specs.Linux{
			CgroupsPath:   o.CgroupsPath,
			Namespaces:    namespaces(o),
			MaskedPaths:   MaskedPaths(),
			ReadonlyPaths: ReadonlyPaths(),
			Resources:     resources(o),
		},
	}
	for _, m := range o.Mounts {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: filepath.Clean(m.Destination), Type: "bind", Source: filepath.Clean(m.Source), Options: opts})
	}
	sc, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("default seccomp profile: %w", err)
	}
	s.Linux.Seccomp = sc
	return s, nil
}

// DefaultCapabilities is Docker's default capability set for a container's process.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// MaskedPaths are the paths Docker hides from a container (bind-mounted over with an
// empty file or directory).
func MaskedPaths() []string {
	return []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

// ReadonlyPaths are the paths Docker makes read-only in a container.
func ReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
	}
}

func namespaces(o Options) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
	}
	if o.Network != NetworkHost {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if o.CgroupNS {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

// cpuPeriod is the CFS period for --cpus, in microseconds, as Docker uses.
const cpuPeriod = 100000

func resources(o Options) *specs.LinuxResources {
	r := &specs.LinuxResources{
		// Deny every device, then the runtime allows its default set (null, zero,
		// full, random, urandom, tty, ptmx, pts), as Docker does.
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if o.Memory > 0 {
		lim := o.Memory
		r.Memory = &specs.LinuxMemory{Limit: &lim}
		if !o.NoSwapLimit {
			swap := o.Memory // memory+swap equal to memory: no swap on top of the limit
			r.Memory.Swap = &swap
		}
	}
	if o.CPUs > 0 {
		period := uint64(cpuPeriod)
		quota := int64(o.CPUs * cpuPeriod)
		if quota < 1000 {
			quota = 1000 // the kernel's minimum quota is 1 ms
		}
		r.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	return r
}

// defaultPath is Docker's PATH for images that set none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// mergeEnv returns the image's environment with the user's variables replacing those
// of the same name, in order of first appearance, plus PATH, HOSTNAME and TERM as
// Docker sets them.
func mergeEnv(image, user []string, hostname string, tty bool) []string {
	var out []string
	idx := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	setDefault := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := idx[k]; !ok {
			set(kv)
		}
	}
	setDefault(defaultPath)
	if hostname != "" {
		set("HOSTNAME=" + hostname)
	}
	for _, kv := range image {
		set(kv)
	}
	if tty {
		setDefault("TERM=xterm")
	}
	for _, kv := range user {
		set(kv)
	}
	return out
}

// Write stores s as dir/config.json, atomically: a reader sees the old file or the
// whole new one, also after a crash.
func Write(dir string, s *specs.Spec) error {
	b, err := json.Marshal(s) // compact: a third smaller and faster to write and read
	if err != nil {
		return fmt.Errorf("encode bundle: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, ConfigFile), b, 0o600)
}

// Read loads dir/config.json.
func Read(dir string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode bundle %s: %w", dir, err)
	}
	return &s, nil
}

// WriteFileAtomic writes data to path through a temporary file renamed over it: a
// reader sees the old file or the whole new one, also after the writer is killed. It
// does not sync: what it writes describes containers, which do not outlive the host's
// kernel, and a sync costs milliseconds on every container start.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
