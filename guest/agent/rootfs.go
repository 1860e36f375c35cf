package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/guest"
)

// SerialSource prefixes a spec mount's source that names a virtio-blk disk by serial
// (a volume disk): "serial:hull-vol-0".
const SerialSource = "serial:"

// prepare builds the container's root for run and returns its path: the layer disks
// as overlay lower layers (topmost first), the scratch disk or a tmpfs as the upper
// layer, then the spec's mounts, hostname and cwd.
func (a *Agent) prepare(run *guest.Run) (string, error) {
	root := a.Base
	if len(run.Layers) > 0 {
		var err error
		if root, err = a.overlay(run.Layers, run.Scratch); err != nil {
			return "", err
		}
	}
	mounts := run.Spec.Mounts
	switch {
	case root == "/":
		// The agent's own root (a run without layers, for debugging) already has
		// /proc, /sys and /dev; mounting over them would hide the agent's devices.
		mounts = nil
	case len(mounts) == 0:
		mounts = a.defaultMounts()
	}
	for _, m := range mounts {
		if err := a.mountSpec(root, m); err != nil {
			return "", fmt.Errorf("mount %s (%s): %w", m.Destination, m.Type, err)
		}
	}
	for _, f := range run.Files {
		if err := writeFile(root, f); err != nil {
			return "", err
		}
	}
	if run.Debug && a.Tools != "" {
		if err := a.bindTools(root); err != nil {
			return "", err
		}
	}
	if run.Spec.Root != nil && run.Spec.Root.Readonly && root != a.Base {
		if err := a.Mount("", root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return "", fmt.Errorf("make the root read-only: %w", err)
		}
	}
	if l := run.Spec.Linux; l != nil {
		if err := applySysctl(l.Sysctl); err != nil {
			return "", err
		}
	}
	if h := run.Spec.Hostname; h != "" {
		if err := unix.Sethostname([]byte(h)); err != nil {
			return "", fmt.Errorf("set hostname %q: %w", h, err)
		}
	}
	cwd := run.Spec.Process.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return "", fmt.Errorf("cwd %q is not absolute", cwd)
	}
	dir, err := inRoot(root, cwd)
	if err != nil {
		return "", fmt.Errorf("cwd %s: %w", cwd, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create cwd %s: %w", cwd, err)
	}
	return root, nil
}

// writeFile writes one of Run.Files into the root, resolving its path inside the root
// (a hostile image's symlinks cannot lead it out) and never through a final symlink.
func writeFile(root string, f guest.File) error {
	dst, err := inRoot(root, f.Path)
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	mode := os.FileMode(0o644)
	if f.ReadOnly {
		mode = 0o444
	}
	w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, mode)
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	_, err = w.Write(f.Data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(dst, mode)
	}
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	return nil
}

// applySysctl writes the spec's sysctls (linux.sysctl) to /proc/sys. The VM is the
// container's own, so every key is allowed; a key must still name a path under
// /proc/sys.
func applySysctl(m map[string]string) error {
	for k, v := range m {
		if k == "" || strings.Contains(k, "..") || strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/") != "" {
			return fmt.Errorf("sysctl %q: not a sysctl name", k)
		}
		p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

func (a *Agent) defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "bind", Source: a.Dev, Options: []string{"rbind"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
}

// overlay mounts the layers and the upper layer and returns the merged root.
func (a *Agent) overlay(layers []string, scratch string) (string, error) {
	lower := make([]string, len(layers))
	for i, id := range layers {
		dev, err := a.findDisk(id)
		if err != nil {
			return "", fmt.Errorf("layer %d: %w", i, err)
		}
		dir := filepath.Join(a.Work, "l", strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		if err := a.mountDisk(dev, dir, "", unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
			return "", fmt.Errorf("layer %d (%s): %w", i, id, err)
		}
		lower[len(layers)-1-i] = dir // overlayfs wants the topmost layer first
	}
	if strings.ContainsAny(a.Work, ",:\\") {
		return "", fmt.Errorf("work folder %q has a comma, colon or backslash, which overlayfs options cannot carry", a.Work)
	}
	up := filepath.Join(a.Work, "scratch")
	if err := os.MkdirAll(up, 0o755); err != nil {
		return "", err
	}
	if scratch != "" {
		dev, err := a.findDisk(scratch)
		if err != nil {
			return "", fmt.Errorf("scratch: %w", err)
		}
		if err := a.Mount(dev, up, "ext4", unix.MS_NODEV, ""); err != nil {
			return "", fmt.Errorf("mount scratch %s (%s) as ext4: %w (the host formats it)", scratch, dev, err)
		}
	} else if err := a.Mount("tmpfs", up, "tmpfs", unix.MS_NODEV, "mode=0755"); err != nil {
		return "", fmt.Errorf("mount tmpfs for the upper layer: %w", err)
	}
	upper, work := filepath.Join(up, "upper"), filepath.Join(up, "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	root := filepath.Join(a.Work, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	data := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(data) >= 4096 {
		return "", fmt.Errorf("overlay options of %d bytes exceed a page: shorten the agent's Work path", len(data))
	}
	if err := a.Mount("overlay", root, "overlay", 0, data); err != nil {
		return "", fmt.Errorf("mount overlay root: %w", err)
	}
	return root, nil
}

// mountDisk mounts a block device as fstype, or when fstype is empty as EROFS and
// then ext4.
func (a *Agent) mountDisk(dev, dir, fstype string, flags uintptr, data string) error {
	if fstype != "" {
		return a.Mount(dev, dir, fstype, flags, data)
	}
	err := a.Mount(dev, dir, "erofs", flags, data)
	if err == nil {
		return nil
	}
	err2 := a.Mount(dev, dir, "ext4", flags, data)
	if err2 == nil {
		return nil
	}
	return fmt.Errorf("mount %s: as erofs: %v; as ext4: %w", dev, err, err2)
}

// findDisk returns the device node of the block disk whose serial is id, waiting up to
// DiskWait for it to appear.
func (a *Agent) findDisk(id string) (string, error) {
	deadline := time.Now().Add(a.DiskWait)
	for {
		dev, err := a.findDiskOnce(id)
		if err == nil || time.Now().After(deadline) {
			return dev, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *Agent) findDiskOnce(id string) (string, error) {
	dir := filepath.Join(a.Sys, "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("list disks: %w", err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name(), "serial"))
		if err != nil {
			continue // not virtio-blk
		}
		b, err := io.ReadAll(io.LimitReader(f, 64))
		f.Close()
		if err == nil && strings.TrimRight(string(b), "\n\x00 ") == id {
			return filepath.Join(a.Dev, e.Name()), nil
		}
	}
	return "", fmt.Errorf("no disk with serial %q in %s: the VMM must attach it with that serial", id, dir)
}

// bindTools binds the debug tools read-only at /.hull/bin.
func (a *Agent) bindTools(root string) error {
	if _, err := os.Stat(a.Tools); err != nil {
		return fmt.Errorf("debug tools: %w: build the initramfs with --debug-shell", err)
	}
	dst, err := inRoot(root, "/.hull/bin")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := a.Mount(a.Tools, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind debug tools: %w", err)
	}
	return a.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
}

// mountSpec applies one OCI mount (runtime-spec config.md "Mounts") inside root.
func (a *Agent) mountSpec(root string, m specs.Mount) error {
	if !path.IsAbs(m.Destination) {
		return fmt.Errorf("destination %q is not absolute", m.Destination)
	}
	dst, err := inRoot(root, m.Destination)
	if err != nil {
		return err
	}
	o := parseOptions(m.Options)
	typ := m.Type
	if typ == "bind" || typ == "rbind" {
		o.flags |= unix.MS_BIND
		if typ == "rbind" {
			o.flags |= unix.MS_REC
		}
		typ = ""
	}
	switch {
	case strings.HasPrefix(m.Source, SerialSource):
		dev, err := a.findDisk(strings.TrimPrefix(m.Source, SerialSource))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if typ == "bind" || typ == "none" {
			typ = ""
		}
		if err := a.mountDisk(dev, dst, typ, o.flags&^(unix.MS_BIND|unix.MS_REC), o.data); err != nil {
			return err
		}
	case o.flags&unix.MS_BIND != 0:
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("bind source: %w", err)
		}
		if err := makeTarget(dst, fi.IsDir()); err != nil {
			return err
		}
		if err := a.Mount(m.Source, dst, "", unix.MS_BIND|(o.flags&unix.MS_REC), ""); err != nil {
			return err
		}
		if rest := o.flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := a.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|rest, ""); err != nil {
				return fmt.Errorf("remount with options: %w", err)
			}
		}
	default:
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if typ == "cgroup" {
			typ = "cgroup2" // the guest kernel has only the unified hierarchy
		}
		src := m.Source
		if src == "" {
			src = typ
		}
		if err := a.Mount(src, dst, typ, o.flags, o.data); err != nil {
			if optional(typ) && (errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EBUSY)) {
				a.Log.Warn("mount skipped: not supported by the guest kernel", "dst", m.Destination, "type", typ, "err", err)
				return nil
			}
			return err
		}
		if m.Destination == "/dev" && typ == "tmpfs" {
			if err := a.populateDev(dst); err != nil {
				return err
			}
		}
	}
	if o.propagation != 0 {
		if err := a.Mount("", dst, "", o.propagation, ""); err != nil {
			return fmt.Errorf("set propagation: %w", err)
		}
	}
	return nil
}

// optional lists filesystems a spec may ask for that the guest kernel may lack.
func optional(typ string) bool { return typ == "mqueue" || typ == "cgroup2" }

func makeTarget(p string, dir bool) error {
	if dir {
		return os.MkdirAll(p, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// populateDev fills a tmpfs /dev the way runc does: the standard device nodes bound
// from the agent's /dev, and the usual symlinks.
func (a *Agent) populateDev(dev string) error {
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, n)
		if err := makeTarget(p, false); err != nil {
			return err
		}
		if err := a.Mount(filepath.Join(a.Dev, n), p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.MkdirAll(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// options is a parsed OCI mount option list.
type options struct {
	flags, propagation uintptr
	data               string
}

// parseOptions splits fstab-style options into mount flags, propagation flags and the
// filesystem's own data string.
func parseOptions(opts []string) options {
	var o options
	var data []string
	for _, s := range opts {
		if f, clear, ok := mountFlag(s); ok {
			if clear {
				o.flags &^= f
			} else {
				o.flags |= f
			}
			continue
		}
		if p, ok := propagationFlag(s); ok {
			o.propagation |= p
			continue
		}
		switch s {
		case "", "defaults", "mand", "nomand", "tmpcopyup", "idmap", "ridmap":
			continue
		}
		data = append(data, s)
	}
	o.data = strings.Join(data, ",")
	return o
}

func mountFlag(s string) (flag uintptr, clear, ok bool) {
	switch s {
	case "ro":
		return unix.MS_RDONLY, false, true
	case "rw":
		return unix.MS_RDONLY, true, true
	case "nosuid":
		return unix.MS_NOSUID, false, true
	case "suid":
		return unix.MS_NOSUID, true, true
	case "nodev":
		return unix.MS_NODEV, false, true
	case "dev":
		return unix.MS_NODEV, true, true
	case "noexec":
		return unix.MS_NOEXEC, false, true
	case "exec":
		return unix.MS_NOEXEC, true, true
	case "sync":
		return unix.MS_SYNCHRONOUS, false, true
	case "async":
		return unix.MS_SYNCHRONOUS, true, true
	case "dirsync":
		return unix.MS_DIRSYNC, false, true
	case "noatime":
		return unix.MS_NOATIME, false, true
	case "atime":
		return unix.MS_NOATIME, true, true
	case "nodiratime":
		return unix.MS_NODIRATIME, false, true
	case "diratime":
		return unix.MS_NODIRATIME, true, true
	case "relatime":
		return unix.MS_RELATIME, false, true
	case "norelatime":
		return unix.MS_RELATIME, true, true
	case "strictatime":
		return unix.MS_STRICTATIME, false, true
	case "nostrictatime":
		return unix.MS_STRICTATIME, true, true
	case "bind":
		return unix.MS_BIND, false, true
	case "rbind":
		return unix.MS_BIND | unix.MS_REC, false, true
	}
	return 0, false, false
}

func propagationFlag(s string) (uintptr, bool) {
	switch s {
	case "private":
		return unix.MS_PRIVATE, true
	case "rprivate":
		return unix.MS_PRIVATE | unix.MS_REC, true
	case "shared":
		return unix.MS_SHARED, true
	case "rshared":
		return unix.MS_SHARED | unix.MS_REC, true
	case "slave":
		return unix.MS_SLAVE, true
	case "rslave":
		return unix.MS_SLAVE | unix.MS_REC, true
	case "unbindable":
		return unix.MS_UNBINDABLE, true
	case "runbindable":
		return unix.MS_UNBINDABLE | unix.MS_REC, true
	}
	return 0, false
}

// maxLinks caps symlinks followed while resolving one path (Linux's limit is 40).
const maxLinks = 255

// inRoot resolves p, a path as the container sees it, to a path under root, following
// symlinks as if root were / so that a hostile image cannot point a mount outside its
// root. Components that do not exist are kept as named, for the caller to create.
func inRoot(root, p string) (string, error) {
	cur := "/"
	todo := p
	links := 0
	for todo != "" {
		var part string
		part, todo, _ = strings.Cut(strings.TrimLeft(todo, "/"), "/")
		switch part {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolve %s: too many symlinks", p)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		todo = target + "/" + todo
	}
	return filepath.Join(root, cur), nil
}
