package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxOverlayOptions is the kernel's limit on mount options: one page.
const maxOverlayOptions = 4000

// MountRootfs mounts c's root filesystem at c.Rootfs(): an overlay of its layer disks
// (c.Disks, lowest first; EROFS or ext4 filesystem images) over the init layer (see
// initLayer), with the writable layer in c.Dir/upper and c.Dir/work.
//
// EROFS layers are detached mounts of the disk files themselves where the kernel can
// (fsmount(2) of a file-backed EROFS, Linux 6.12, and overlay layers on detached mounts,
// Linux 6.15): they have no mount point, appear in no mount table, and go with the
// overlay when it is unmounted; the overlay's options name them /proc/self/fd/N. Other
// layers, or all of them where the overlay refuses detached ones, are mounted read-only
// at dir/l/N (see mountDisk). Loop devices are set to clear themselves when unmounted,
// so UnmountRootfs leaves none behind. On error whatever was mounted is unmounted again.
//
// Each way spares the layers' mount points on purpose: on the state filesystem here a
// directory made and removed costs 0.1 to 0.2 ms, and a container pays that for every
// one (docs/run.md).
//
// The writable layer of a container removed when it exits (c.Remove) is mounted
// "volatile": nothing in it outlives the container, so the overlay need not sync it,
// neither on every fsync in the container nor when it is unmounted. A kept
// container's is not: a database in it must not lose acknowledged writes in a crash.
func MountRootfs(c *Container) error {
	return mountRootfs(c.Dir, c.Rootfs(), c.Disks, rootfsOptions{
		init: initLayer(filepath.Dir(c.Dir)), volatile: c.Remove, detach: true,
	})
}

// rootfsOptions are mountRootfs's choices.
type rootfsOptions struct {
	init     string // a directory stacked under the layers, or ""
	volatile bool   // the writable layer is not synced
	detach   bool   // EROFS layers as detached mounts where the kernel can
}

// initVersion names the init layer's contents: a hull that changes them bumps it.
const initVersion = "2"

// initLayer returns the init layer under containers (made on first use and shared by
// every container), or "" when it cannot be made. It holds the mount points an OCI
// runtime mounts over in every container and makes when the image lacks them: /proc,
// /dev and /sys (Docker's init layer holds them too). A runtime makes them in the
// container's writable layer, and each is removed again with the container: on ext4
// here a directory made and removed costs about 0.2 ms, a few percent of a short
// container's run. (/etc/hosts and /etc/hostname are not here: runc opens its bind
// mounts' targets with O_CREAT, which copies them up into the writable layer whether
// or not a lower layer has them.)
//
// It is the lowest layer, under the image's: whatever the image has wins, and the
// layer only fills what the image lacks.
func initLayer(containers string) string {
	dir := filepath.Join(containers, ".init-"+initVersion)
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	tmp, err := os.MkdirTemp(containers, ".init-new-")
	if err != nil {
		return ""
	}
	defer os.RemoveAll(tmp) // gone once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return ""
	}
	for _, d := range []string{"proc", "dev", "sys"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return ""
		}
	}
	// Another hull may have made it meanwhile: then its is as good.
	if err := os.Rename(tmp, dir); err != nil {
		if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
			return ""
		}
	}
	return dir
}

// mountRootfs is MountRootfs for a directory, root file system and disks.
func mountRootfs(dir, rootfs string, disks []string, o rootfsOptions) (err error) {
	if len(disks) == 0 {
		return errors.New("mount rootfs: the image has no layers")
	}
	defer func() {
		if err != nil {
			UnmountRootfs(dir, rootfs)
		}
	}()
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work, rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("mount rootfs: %w", err)
		}
	}
	lower := make([]string, len(disks)) // overlay wants the highest layer first
	var detached []int
	defer func() {
		for _, fd := range detached {
			unix.Close(fd) // the overlay holds what it uses
		}
	}()
	for i, disk := range disks {
		if !o.detach {
			break
		}
		fd, ok := detachLayer(disk)
		if !ok {
			break
		}
		detached = append(detached, fd)
		lower[len(disks)-1-i] = "/proc/self/fd/" + strconv.Itoa(fd)
	}
	if len(detached) == len(disks) {
		if err = mountOverlay(rootfs, o.stack(lower), upper, work, o.volatile); err == nil {
			return nil
		}
	}
	for i, disk := range disks {
		mp := filepath.Join(dir, "l", strconv.Itoa(i))
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return fmt.Errorf("mount layer %s: %w", disk, err)
		}
		if err := mountDisk(disk, mp); err != nil {
			return err
		}
		lower[len(disks)-1-i] = mp
	}
	return mountOverlay(rootfs, o.stack(lower), upper, work, o.volatile)
}

// stack puts the init layer, if any, under lower (highest first).
func (o rootfsOptions) stack(lower []string) []string {
	if o.init == "" {
		return lower
	}
	return append(lower, o.init)
}

// mountOverlay mounts the overlay of lower (highest first) at rootfs.
func mountOverlay(rootfs string, lower []string, upper, work string, volatile bool) error {
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
	if volatile {
		opts += ",volatile"
	}
	if len(opts) > maxOverlayOptions {
		return fmt.Errorf("mount rootfs: %d layers are too many for one overlay mount", len(lower))
	}
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", rootfs, err)
	}
	return nil
}

// detachLayer returns a detached read-only mount of an EROFS layer disk, mounted from
// the file itself, or false when disk is not EROFS or the kernel cannot.
func detachLayer(disk string) (int, bool) {
	f, err := os.Open(disk)
	if err != nil {
		return -1, false
	}
	fstype, err := diskType(f)
	f.Close()
	if err != nil || fstype != "erofs" {
		return -1, false
	}
	fs, err := unix.Fsopen("erofs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, false
	}
	defer unix.Close(fs)
	if unix.FsconfigSetString(fs, "source", disk) != nil || unix.FsconfigCreate(fs) != nil {
		return -1, false
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return -1, false
	}
	return m, true
}

// UnmountRootfs undoes MountRootfs, also a partial one; it is idempotent.
func UnmountRootfs(dir, rootfs string) error {
	var errs []error
	if err := unmount(rootfs); err != nil {
		errs = append(errs, err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "l"))
	for _, e := range ents {
		if err := unmount(filepath.Join(dir, "l", e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmount unmounts every mount stacked at path; a path with nothing mounted is fine.
func unmount(path string) error {
	for range 16 {
		err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", path, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 16 unmounts", path)
}

// Filesystem magics (EROFS: fs/erofs/erofs_fs.h; ext4: the superblock's s_magic).
const (
	erofsMagic = 0xE0F5E1E2
	ext4Magic  = 0xEF53
)

// diskType tells the filesystem of a layer disk from its superblock.
func diskType(f *os.File) (string, error) {
	var sb [1024 + 0x40]byte
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, int64(len(sb))), sb[:]); err != nil {
		return "", fmt.Errorf("read superblock: %w", err)
	}
	le32 := func(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24 }
	switch {
	case le32(sb[1024:]) == erofsMagic:
		return "erofs", nil
	case uint16(sb[1024+0x38])|uint16(sb[1024+0x39])<<8 == ext4Magic:
		return "ext4", nil
	}
	return "", errors.New("not an EROFS or ext4 filesystem image")
}

// mountDisk mounts disk read-only at mp. An EROFS disk is mounted from the file itself
// where the kernel can (EROFS_FS_BACKED_BY_FILE, Linux 6.12): no loop device to set up
// and tear down, which is most of a layer's mount and unmount time. Otherwise (ext4, or
// an older kernel) disk is attached to a free loop device, read-only and autoclearing,
// and that is mounted (mount -o loop,ro).
func mountDisk(disk, mp string) error {
	f, err := os.Open(disk)
	if err != nil {
		return fmt.Errorf("open layer disk: %w", err)
	}
	defer f.Close()
	fstype, err := diskType(f)
	if err != nil {
		return fmt.Errorf("layer disk %s: %w", disk, err)
	}
	if fstype == "erofs" {
		err := unix.Mount(disk, mp, fstype, unix.MS_RDONLY, "")
		if err == nil {
			return nil
		}
		// ENOTBLK: a kernel that mounts EROFS from block devices only.
		if !errors.Is(err, unix.ENOTBLK) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("mount layer disk %s (%s): %w", disk, fstype, err)
		}
	}
	loop, err := attachLoop(f)
	if err != nil {
		return fmt.Errorf("layer disk %s: %w", disk, err)
	}
	defer loop.Close() // autoclear: the device goes when unmounted and closed
	data := ""
	if fstype == "ext4" {
		data = "noload"
	}
	if err := unix.Mount(loop.Name(), mp, fstype, unix.MS_RDONLY, data); err != nil {
		return fmt.Errorf("mount layer disk %s (%s on %s): %w", disk, fstype, loop.Name(), err)
	}
	return nil
}

// attachLoop binds f to a free loop device and returns the device, open.
func attachLoop(f *os.File) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	for range 64 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev, err := os.OpenFile("/dev/loop"+strconv.Itoa(n), os.O_RDONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open loop device: %w", err)
		}
		cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if errors.Is(err, unix.EBUSY) {
			continue // another process took it first
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			return attachLoopOld(ctl, f)
		}
		return nil, fmt.Errorf("configure loop device %d: %w", n, err)
	}
	return nil, errors.New("no free loop device after 64 tries")
}

// attachLoopOld is attachLoop for kernels before 5.8 (no LOOP_CONFIGURE).
func attachLoopOld(ctl, f *os.File) (*os.File, error) {
	for range 64 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev, err := os.OpenFile("/dev/loop"+strconv.Itoa(n), os.O_RDONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open loop device: %w", err)
		}
		if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(f.Fd())); err != nil {
			dev.Close()
			if errors.Is(err, unix.EBUSY) {
				continue
			}
			return nil, fmt.Errorf("attach loop device %d: %w", n, err)
		}
		info := unix.LoopInfo64{Flags: unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR}
		if err := unix.IoctlLoopSetStatus64(int(dev.Fd()), &info); err != nil {
			unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
			dev.Close()
			return nil, fmt.Errorf("set loop device %d status: %w", n, err)
		}
		return dev, nil
	}
	return nil, errors.New("no free loop device after 64 tries")
}

// readRootFile reads a small file inside rootfs without following links out of it
// (the image is hostile), at most max bytes. A missing file is nil, nil.
func readRootFile(rootfs, name string, max int64) ([]byte, error) {
	root, err := os.Open(rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// O_PATH first: a device node or FIFO planted by the image is never opened.
	fd, err := unix.Openat2(int(root.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s in the image: %w", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil
	}
	f, err := os.Open("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("open %s in the image: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil, fmt.Errorf("read %s in the image: %w", name, err)
	}
	return b, nil
}
