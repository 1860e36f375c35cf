package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/lab"
	"github.com/hullvm/hull/lab/labtest"
)

// TestLabCgroup2 runs container mode (issue 7) on a host whose only cgroup hierarchy is
// cgroup v2, which the build machines (hybrid: v1 controllers, a v2 hierarchy beside
// them) cannot show: in ONE nested-lab L1 boot (package lab) that mounts cgroup2 alone
// at /sys/fs/cgroup, with runc, then with crun (which refuses hybrid hosts), it runs a
// container's status and output, a --memory limit (memory.max, and an OOM kill), a
// detached container through stop and rm, and checks nothing is left behind.
//
// L1's root is the initramfs (rootfs), which pivot_root(2) cannot leave, so runc and
// crun fail there (the first step shows it); the script runs in a chroot at a bind mount
// of it instead, as on a host whose root is a real mount.
func TestLabCgroup2(t *testing.T) {
	res := runContainerLab(t, cgroup2Mount+cgroupInitramfs, cgroup2Script)
	clean := []string{"containers: 0", "mounts: 0", "loops: 0", "cgroups: 0", "runc state: 0", "crun state: 0"}
	detached := []string{"logs: started", "running: 1", "host memory.max: 67108864", "host procs: yes", "stopped: exited", "term", "after rm: none"}
	checkLabSteps(t, res, []labWant{
		{"cgroup-setup", 0, []string{"cgroup2 /sys/fs/cgroup cgroup2", "v1 hierarchies: 0", "memory"}},
		{"load", 0, nil},
		{"runc-arith", 3, []string{"42"}},
		{"runc-memory", 0, []string{"memory.max=67108864"}},
		{"runc-oom", 137, nil},
		{"runc-detach", 0, detached},
		{"runc-clean", 0, clean},
		{"crun-arith", 3, []string{"42"}},
		{"crun-memory", 0, []string{"memory.max=67108864"}},
		{"crun-oom", 137, nil},
		{"crun-detach", 0, detached},
		{"crun-clean", 0, clean},
	})
	t.Run("times", func(t *testing.T) {
		var runc, crun []float64
		for r := 1; r <= 3; r++ {
			for _, rt := range []string{"runc", "crun"} {
				s, ok := res.Step(fmt.Sprintf("time-%s-%d", rt, r))
				if !ok || s.ExitCode != 0 {
					t.Fatalf("time-%s-%d: %+v", rt, r, s)
				}
				_, v, _ := strings.Cut(s.Output, "WALL ")
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					t.Fatalf("time-%s-%d: no WALL in %q", rt, r, s.Output)
				}
				if rt == "runc" {
					runc = append(runc, f)
				} else {
					crun = append(crun, f)
				}
			}
		}
		t.Logf("hull run --rm --isolation container busybox true, L1 clock (TCG): runc %v s, crun %v s", runc, crun)
	})
	if s, ok := res.Step("initramfs-root"); ok {
		t.Logf("the same hull run in L1's initramfs root, without the chroot (status %d):\n%s", s.ExitCode, s.Output)
	}
}

// TestLabCgroup1 is the same on a cgroup v1-only host (one v1 hierarchy per controller
// on a tmpfs at /sys/fs/cgroup, nothing on cgroup2), in an L1 boot of its own: a
// controller used on one version cannot reliably move to the other in the same boot
// (its removed cgroups linger while memory is still charged to them).
func TestLabCgroup1(t *testing.T) {
	res := runContainerLab(t, cgroup1Mount, cgroup1Script)
	clean := []string{"containers: 0", "mounts: 0", "loops: 0", "cgroups: 0", "runc state: 0", "crun state: 0"}
	checkLabSteps(t, res, []labWant{
		{"cgroup-setup", 0, []string{"v2 mounted: 0", "memsw: yes", "devices", "memory"}},
		{"load", 0, nil},
		{"runc-arith", 3, []string{"42"}},
		{"runc-memory", 0, []string{"limit=67108864", "memsw=67108864"}},
		{"runc-oom", 137, nil},
		{"crun-arith", 3, []string{"42"}},
		{"crun-memory", 0, []string{"limit=67108864", "memsw=67108864"}},
		{"crun-oom", 137, nil},
		{"clean", 0, clean},
	})
}

// runContainerLab boots L1 with hull (CGO_ENABLED=0), runc, crun, mkfs.erofs and the
// busybox image, runs mount (busybox sh: it mounts the cgroups at /newroot/sys/fs/cgroup,
// once /newroot is a bind mount of L1's root with proc, sysfs and devtmpfs in it), then
// script in a chroot at /newroot, in /payload, with labCommon's functions.
func runContainerLab(t *testing.T, mount, script string) lab.Result {
	t.Helper()
	d, cfg := labtest.Setup(t)
	testenv.RequireRoot(t)
	testenv.RequireFile(t, filepath.Join(cfg.Modules, "erofs.ko"), "the lab's erofs module (scripts/lab-kernel)")
	testenv.RequireFile(t, d.BusyboxImage(), "the busybox OCI image")
	tmp := t.TempDir()

	hull := labtest.Build(t, tmp, "cmd/hull")
	inner := filepath.Join(tmp, "containers.sh")
	if err := os.WriteFile(inner, []byte(labCommon+script), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Payload = map[string]string{"hull": hull, "containers.sh": inner}
	if err := lab.AddTree(cfg.Payload, d.BusyboxImage(), "cache/images/busybox-oci"); err != nil {
		t.Fatal(err)
	}
	for l1, bin := range map[string]string{
		"/usr/sbin/runc": "runc", "/usr/bin/crun": "crun", "/usr/bin/mkfs.erofs": "mkfs.erofs",
	} {
		if err := lab.AddBinary(cfg.Payload, testenv.RequireBinary(t, bin), l1); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Script = newrootMount + mount + chrootRun
	cfg.Timeout = 10 * time.Minute
	cfg.Log = labtest.Log(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := labtest.Run(ctx, t, cfg, func(lab.Result) string { return "" }) // containers: no L2 guests to stall
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Logf("lab: L1 boot %v, whole run %v", res.BootTime.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	return res
}

// labWant is what one step must show: its status, and strings in its output.
type labWant struct {
	step   string
	status int
	want   []string
}

func checkLabSteps(t *testing.T, res lab.Result, wants []labWant) {
	t.Helper()
	for _, tt := range wants {
		t.Run(tt.step, func(t *testing.T) {
			s, ok := res.Step(tt.step)
			if !ok {
				t.Fatalf("step %s never ran; lab output:\n%s", tt.step, res.Output)
			}
			if s.ExitCode != tt.status {
				t.Errorf("status %d, want %d; output:\n%s", s.ExitCode, tt.status, s.Output)
			}
			for _, w := range tt.want {
				if !strings.Contains(s.Output, w) {
					t.Errorf("output lacks %q:\n%s", w, s.Output)
				}
			}
		})
	}
}

// newrootMount makes /newroot a bind mount of L1's root (pivot_root refuses the initramfs
// itself: the runtimes need a root that is a mount with a parent) with the pseudo file
// systems in it.
const newrootMount = `set -e
mkdir -p /newroot
mount --bind / /newroot
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
`

// chrootRun runs the test's script in the chroot.
const chrootRun = `set +e
exec chroot /newroot /bin/busybox sh -c 'cd /payload && . /hull/lib.sh && . /payload/containers.sh'
`

// cgroup2Mount mounts cgroup v2 alone, with every controller enabled for the root's
// children, as systemd does.
const cgroup2Mount = `mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup
for c in $(cat /newroot/sys/fs/cgroup/cgroup.controllers); do echo +$c >/newroot/sys/fs/cgroup/cgroup.subtree_control; done
`

// cgroupInitramfs shows, for the log, why the chroot: a container in L1's own root.
const cgroupInitramfs = `set +e
mount -t cgroup2 cgroup2 /sys/fs/cgroup
initramfs() {
	./hull --root /tmp/rootfs-state load -q -i /payload/cache/images/busybox-oci >/dev/null &&
	timeout -s KILL 120 ./hull --root /tmp/rootfs-state run --rm --isolation container --cgroup-parent initramfs busybox true
	c=$?
	echo "left: mounts $(grep -c /tmp/rootfs-state /proc/mounts), loops $(cat /sys/block/loop*/loop/backing_file 2>/dev/null | wc -l), cgroups $(find /sys/fs/cgroup/initramfs -mindepth 1 -type d 2>/dev/null | wc -l)"
	return $c
}
step initramfs-root initramfs
`

// cgroup1Mount mounts one cgroup v1 hierarchy per enabled controller on a tmpfs, and no
// cgroup2.
const cgroup1Mount = `mount -t tmpfs -o mode=755 cgroup /newroot/sys/fs/cgroup
for c in $(awk 'NR > 1 && $4 == 1 {print $1}' /proc/cgroups); do
	mkdir /newroot/sys/fs/cgroup/$c
	mount -t cgroup -o $c cgroup /newroot/sys/fs/cgroup/$c
done
`

// labCommon starts the chroot's script. "timed" prints the seconds, on L1's clock, from
// starting a command to its end (WALL); clean counts what hull left behind.
const labCommon = `export PATH=/payload:$PATH HULL_CACHE=/payload/cache
since() { read t _ </proc/uptime; awk "BEGIN{print $t-$1}"; }
timed() { read t0 _ </proc/uptime; "$@"; c=$?; echo "WALL $(since $t0)"; return $c; }
# Every container is bounded: a hung one fails its step, not the whole lab run.
hull() { timeout -s KILL 300 /payload/hull "$@"; }
# The limit leaves runc's own init room: it runs in the container's cgroup until it
# execs the command, and on cgroup v1 the pages of the runc binary it faults in are
# charged there too. Under 16 MiB it was OOM-killed now and then before the command
# ran, and runc failed with "container process is already dead" (125), not an OOM
# kill (two CI runs; waiting longer before the hog allocates did not help). The hog
# still starts once the container runs.
hog='sleep 1; a=xxxxxxxx; while true; do a=$a$a; done'
clean() {
	echo "containers: $(ls /var/lib/hull/containers | wc -l)"
	echo "mounts: $(grep -c /var/lib/hull /proc/mounts)"
	echo "loops: $(cat /sys/block/loop*/loop/backing_file 2>/dev/null | grep -c /var/lib/hull)"
	echo "cgroups: $(find /sys/fs/cgroup -path '*/hull/*' -type d | wc -l)"
	for rt in runc crun; do echo "$rt state: $(ls /var/lib/hull/runtime/$rt 2>/dev/null | wc -l)"; done
}
`

// cgroup2Script runs in the chroot on cgroup v2 only.
const cgroup2Script = `setup() {
	grep cgroup /proc/mounts
	echo "v1 hierarchies: $(awk '$3 == "cgroup"' /proc/mounts | wc -l)"
	echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
	echo "subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
	uname -r
}
step cgroup-setup setup
step load hull load -q -i /payload/cache/images/busybox-oci

mem='echo memory.max=$(cat /sys/fs/cgroup/memory.max); echo memory.swap.max=$(cat /sys/fs/cgroup/memory.swap.max); echo cgroup=$(cat /proc/self/cgroup)'
# detach RUNTIME: a detached container with a memory limit (64m: under a tighter one, runc
# init itself, a Go program in the container's cgroup, is sometimes OOM-killed), seen from
# L1, then stop and rm.
detach() {
	id=$(hull run -d --isolation container --runtime $1 --memory 64m busybox sh -c 'trap "echo term; exit 0" TERM; echo started; while true; do sleep 1; done') || return
	short=$(echo $id | cut -c1-12)
	for i in $(seq 1 120); do hull logs $id | grep -q started && break; sleep 0.5; done
	echo "logs: $(hull logs $id | head -1)"
	echo "running: $(hull ps | grep $short | grep -c -i up)"
	echo "host cgroup: $(find /sys/fs/cgroup/hull -mindepth 1 -type d)"
	echo "host memory.max: $(cat /sys/fs/cgroup/hull/$id/memory.max)"
	[ -n "$(cat /sys/fs/cgroup/hull/$id/cgroup.procs)" ] && echo "host procs: yes"
	hull stop $id >/dev/null || return
	echo "stopped: $(hull ps -a | grep $short | grep -o -i exited | tr A-Z a-z)"
	hull logs $id
	hull rm $id >/dev/null || return
	if hull ps -a | grep -q $short; then echo "after rm: still listed"; else echo "after rm: none"; fi
}

for rt in runc crun; do
	C="hull run --rm --isolation container --runtime $rt"
	step $rt-arith timed $C busybox sh -c 'echo $((6*7)); exit 3'
	step $rt-memory $C --memory 64m busybox sh -c "$mem"
	step $rt-oom $C --memory 64m busybox sh -c "$hog"
	step $rt-detach detach $rt
	step $rt-clean clean
done

# hull run --rm of true, each runtime in turn (L1 clock, TCG: compare, do not quote).
for r in 1 2 3; do
	for rt in runc crun; do step time-$rt-$r timed hull run --rm --isolation container --runtime $rt busybox true; done
done
true
`

// cgroup1Script runs in the chroot on cgroup v1 only.
const cgroup1Script = `setup() {
	echo "v1 hierarchies: $(awk '$3 == "cgroup"' /proc/mounts | wc -l)"
	echo "v2 mounted: $(awk '$3 == "cgroup2"' /proc/mounts | wc -l)"
	ls /sys/fs/cgroup | tr '\n' ' '; echo
	[ -e /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes ] && echo "memsw: yes"
}
step cgroup-setup setup
step load hull load -q -i /payload/cache/images/busybox-oci
mem='echo limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); echo memsw=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes)'
for rt in runc crun; do
	C="hull run --rm --isolation container --runtime $rt"
	step $rt-arith $C busybox sh -c 'echo $((6*7)); exit 3'
	step $rt-memory $C --memory 64m busybox sh -c "$mem"
	step $rt-oom $C --memory 64m busybox sh -c "$hog"
done
step clean clean
true
`
