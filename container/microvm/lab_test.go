package microvm_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/guest/initramfs"
	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/lab"
	"github.com/hullvm/hull/lab/labtest"
)

// TestLabVM runs VM mode end to end in the nested lab (package lab): in ONE L1 boot,
// `hull vm exec` (issue 3: the host API that boots kernel + initramfs + disks and runs a
// process through the agent), QEMU microvm booting the same kernel and initramfs for
// comparison, and `hull run --isolation vm` (issue 7) with its options and `hull exec`
// into a running VM container. Each scenario
// is a step; each L2 VM boots in a few seconds of emulated time.
func TestLabVM(t *testing.T) {
	d, cfg := labtest.Setup(t)
	testenv.RequireRoot(t)
	testenv.RequireFile(t, d.Kernel(), "hull's guest kernel")
	testenv.RequireFile(t, d.BusyboxImage(), "the busybox OCI image")
	tmp := t.TempDir()

	hull := labtest.Build(t, tmp, "cmd/hull")
	// The initramfs of this tree's agent, so the test covers the agent as it is now.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ird, err := initramfs.Build(ctx, initramfs.Options{Dir: filepath.Join(tmp, "initramfs"), Source: moduleRoot(t)})
	if err != nil {
		t.Fatalf("build initramfs: %v", err)
	}

	cfg.Payload = map[string]string{
		"hull":                            hull,
		"cache/kernel/current/bzImage":    d.Kernel(),
		"cache/initramfs/current.cpio.gz": ird.Path,
		"bios-microvm.bin":                "/usr/share/qemu/bios-microvm.bin", // QEMU finds it through -L .
	}
	if err := lab.AddTree(cfg.Payload, d.BusyboxImage(), "cache/images/busybox-oci"); err != nil {
		t.Fatal(err)
	}
	for l1, bin := range map[string]string{
		"/sbin/mkfs.ext4": "mkfs.ext4", "/sbin/debugfs": "debugfs", "/usr/bin/mkfs.erofs": "mkfs.erofs",
		"/payload/qemu": cfg.QEMU,
	} {
		if err := lab.AddBinary(cfg.Payload, testenv.RequireBinary(t, bin), l1); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Script = labScript
	cfg.Timeout = 10 * time.Minute // about 6 min of work; a hung L2 (see docs/vm-mode.md) fails it sooner
	cfg.Log = labtest.Log(t)
	res, err := labtest.Run(ctx, t, cfg, labtest.Stalled)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Logf("lab: L1 boot %v, whole run %v", res.BootTime.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	step := func(t *testing.T, name string) lab.Step {
		t.Helper()
		s, ok := res.Step(name)
		if !ok {
			t.Fatalf("step %s never ran; lab output:\n%s", name, res.Output)
		}
		return s
	}
	guestKernel := kernelVersion(t, d)
	var host unix.Utsname
	if err := unix.Uname(&host); err != nil {
		t.Fatal(err)
	}
	hostRelease := unix.ByteSliceToString(host.Release[:])
	l1Release := strings.TrimSpace(step(t, "l1-uname").Output)

	// Issue 3: hull vm exec.
	for _, tt := range []struct {
		step   string
		status int
		want   []string // lines that must be in the output
	}{
		{"exec-echo", 0, []string{"hello"}},
		{"exec-exit7", 7, nil},
		{"exec-stdin", 0, []string{"piped through the guest"}},
		{"exec-uname", 0, []string{guestKernel}},
		{"exec-missing", 127, []string{"nosuchcmd"}},
		{"exec-initramfs-root", 0, []string{"agent-root-ok"}},
	} {
		t.Run(tt.step, func(t *testing.T) {
			s := step(t, tt.step)
			checkStep(t, s, tt.status, tt.want)
		})
	}
	t.Run("exec-uname-differs", func(t *testing.T) {
		out := step(t, "exec-uname").Output
		if strings.Contains(out, hostRelease) || strings.Contains(out, l1Release) {
			t.Errorf("uname -r in the VM = %q, the same as the host (%s) or L1 (%s)", out, hostRelease, l1Release)
		}
	})
	t.Run("boot-to-exit", func(t *testing.T) {
		var hullExit, hullReady, hullFail, qemuFail []float64
		for r := 1; r <= rounds; r++ {
			tm := step(t, fmt.Sprintf("time-hull-exec-%d", r)).Output
			hullExit = append(hullExit, seconds(t, tm, "WALL"))
			hullReady = append(hullReady, timing(t, tm, "agent ready"))
			f := step(t, fmt.Sprintf("time-hull-novsock-%d", r))
			q := step(t, fmt.Sprintf("time-qemu-novsock-%d", r))
			for _, s := range []lab.Step{f, q} {
				if !strings.Contains(s.Output, "hull-init failed") {
					t.Errorf("%s: the agent did not run and report its missing channel:\n%s", s.Name, s.Output)
				}
			}
			hullFail = append(hullFail, seconds(t, f.Output, "WALL"))
			qemuFail = append(qemuFail, seconds(t, q.Output, "WALL"))
		}
		t.Logf("hull vm exec (echo hello), L1 clock: boot to exit %v s (median %.2f); VMM start to agent ready (process started) %v s",
			hullExit, labtest.Median(hullExit), hullReady)
		h, q := labtest.Median(hullFail), labtest.Median(qemuFail)
		t.Logf("same kernel+initramfs, agent finds no channel (hull.channel=/dev/hvc0, absent) and resets at once (VMM start to VMM exit, L1 clock): hull %v s, QEMU microvm %v s; medians hull %.2f s, QEMU %.2f s: hull/QEMU = %.2f",
			hullFail, qemuFail, h, q, h/q)
	})

	// Issue 7: hull run --isolation vm.
	for _, tt := range []struct {
		step   string
		status int
		want   []string
	}{
		{"run-arith", 3, []string{"42"}},
		{"run-uname", 0, []string{guestKernel}},
		{"run-write", 0, []string{"secret"}},
		{"run-isolated", 1, []string{"No such file"}},
		{"run-volume", 0, []string{"from the host", "host sees: from the guest", "gone: yes"}},
		{"run-options", 0, []string{"FOO=bar", "cwd=/tmp", "uid=1000", "gid=1000", "host=vmhost"}},
		{"run-memlimit", 0, []string{"16777216"}},
		{"run-oom", 137, nil},
		{"run-stdin", 0, []string{"stdin into the VM"}},
		{"run-notfound", 127, []string{"nosuchcmd"}},
		{"run-tty", 0, []string{"/dev/pts/", "tty-ok"}},
		// /etc/hostname and /etc/hosts as Docker writes them, lo up, and a single-file
		// volume carried inline (read-only: mode 0444).
		{"run-etc", 0, []string{"same-name", "localhost-ok", "imageLayoutVersion", "-r--r--r--"}},
		{"run-detach", 0, []string{"logs: started", "running: 1", "stopped: exited", "term", "after rm: none"}},
		{"vmexec-start", 0, []string{"up"}},
		{"vmexec-mark", 0, []string{"hi"}},
		{"vmexec-status", 5, nil},
		{"vmexec-stdin", 0, []string{"piped"}},
		{"vmexec-missing", 127, []string{"nosuchcmd"}},
		{"vmexec-env", 0, []string{"FOO=bar", "cwd=/tmp", "host=vmx-host"}},
		{"vmexec-tty", 0, []string{"/dev/pts/", "tty-ok"}},
		{"vmexec-main-visible", 0, []string{"1"}},
		{"vmexec-concurrent", 0, []string{"fast", "slow"}},
		{"vmexec-stop", 0, []string{"stopped: exited", "exec after stop: 125", "removed"}},
		{"run-nostray", 0, []string{"containers: 0", "mounts: 0", "sockets: 0"}},
	} {
		t.Run(tt.step, func(t *testing.T) {
			checkStep(t, step(t, tt.step), tt.status, tt.want)
		})
	}
	t.Run("vmexec-time", func(t *testing.T) {
		s := step(t, "vmexec-time")
		checkStep(t, s, 0, []string{"WALL"})
		t.Logf("hull exec of true into a running VM container (new vsock session, exec stage, exit), L1 clock: %.2f s", seconds(t, s.Output, "WALL"))
	})
	t.Run("run-boot-to-exit", func(t *testing.T) {
		t.Logf("hull run --rm --isolation vm (create, prepare, boot, run, exit, remove), L1 clock: %.2f s",
			seconds(t, step(t, "run-arith").Output, "WALL"))
	})
	t.Run("run-uname-differs", func(t *testing.T) {
		out := step(t, "run-uname").Output
		if strings.Contains(out, hostRelease) || strings.Contains(out, l1Release) {
			t.Errorf("uname -r in the VM container = %q, the same as the host's container mode (%s) or L1 (%s)", out, hostRelease, l1Release)
		}
	})
}

// rounds is how many times each VMM boots for the figures, interleaved. One: every L2
// boot in the lab is a chance for the emulation to stall (docs/lab.md), and the
// figures are logged, not asserted; TestLabBoot measures boots properly.
const rounds = 1

// labScript runs in L1 (busybox sh, /payload). "timed" prints the seconds, on L1's
// clock, from starting a command to its end (WALL). QEMU's microvm has no i8042, so
// its guest resets by triple fault (reboot=t), which -no-reboot turns into QEMU's exit.
const labScript = `export PATH=/payload:$PATH HULL_CACHE=/payload/cache
hull load -q -i /payload/cache/images/busybox-oci >/dev/null || exit 125
L=$(ls /var/lib/hull/layers/*.erofs | head -1)
K=/payload/cache/kernel/current/bzImage
I=/payload/cache/initramfs/current.cpio.gz
D="--disk $L,ro,id=hull-layer-0"
since() { read t _ </proc/uptime; awk "BEGIN{print $t-$1}"; }
timed() { read t0 _ </proc/uptime; "$@"; c=$?; echo "WALL $(since $t0)"; return $c; }
# Every L2 boot is bounded: a hung VM fails its step, not the whole lab run.
hull() { timeout -s KILL 240 /payload/hull "$@"; }
step l1-uname uname -r

step exec-echo hull vm exec $D -- echo hello
step exec-exit7 hull vm exec $D -- sh -c 'exit 7'
piped() { echo "piped through the guest" | hull vm exec -i $D -- cat; }
step exec-stdin piped
step exec-uname hull vm exec $D -- uname -r
step exec-missing hull vm exec $D -- nosuchcmd
# No layer disks: the process runs in the initramfs itself (the agent's root).
initroot() { hull vm exec -- /init 2>&1 | grep -q "must run as PID 1" && echo agent-root-ok; }
step exec-initramfs-root initroot

for r in 1; do
	step time-hull-exec-$r timed hull vm exec --timings $D -- echo hello
	step time-hull-novsock-$r timed hull vm run --kernel $K --initrd $I --memory 256 --cmdline "console=ttyS0 reboot=k panic=-1 quiet hull.channel=/dev/hvc0"
	step time-qemu-novsock-$r timed timeout -s KILL 240 ./qemu -L . -M microvm,x-option-roms=off,isa-serial=on,rtc=off -enable-kvm -cpu host -m 256 -nodefaults -no-user-config -nographic -no-reboot -serial stdio -kernel $K -initrd $I -append "console=ttyS0 reboot=t panic=-1 quiet hull.channel=/dev/hvc0"
done

V="hull run --rm --isolation vm"
# --debug: the manager logs each stage's time (image, prepare, start, exit, removal).
step run-arith timed hull --debug run --rm --isolation vm busybox sh -c 'echo $((6*7)); exit 3'
step run-uname $V busybox uname -r
step run-write $V busybox sh -c 'echo secret > /root-file; cat /root-file'
step run-isolated $V busybox cat /root-file
vol() {
	mkdir -p /tmp/vol && echo "from the host" > /tmp/vol/in && echo old > /tmp/vol/stale
	$V -v /tmp/vol:/data busybox sh -c 'cat /data/in; echo "from the guest" > /data/out; rm /data/stale' || return
	echo "host sees: $(cat /tmp/vol/out)"
	[ -e /tmp/vol/stale ] || echo "gone: yes"
}
step run-volume vol
step run-options $V -e FOO=bar -w /tmp -u 1000:1000 --hostname vmhost busybox sh -c 'echo FOO=$FOO; echo cwd=$(pwd); echo uid=$(id -u); echo gid=$(id -g); echo host=$(hostname)'
rstdin() { echo "stdin into the VM" | $V -i busybox cat; }
step run-stdin rstdin
step run-notfound $V busybox nosuchcmd
step run-tty $V -t busybox sh -c 'tty; echo tty-ok'
step run-etc $V -v /payload/cache/images/busybox-oci/oci-layout:/etc/layout.json:ro busybox sh -c 'n=$(cat /etc/hostname); [ "$n" = "$(hostname)" ] && [ ${#n} = 12 ] && echo same-name $n; grep -c localhost /etc/hosts; ping -c1 -W2 localhost >/dev/null && echo localhost-ok; cat /etc/layout.json; echo; ls -l /etc/layout.json'
detach() {
	id=$(hull run -d --isolation vm busybox sh -c 'trap "echo term; exit 0" TERM; echo started; while true; do sleep 1; done') || return
	short=$(echo $id | cut -c1-12)
	for i in $(seq 1 120); do hull logs $id | grep -q started && break; sleep 0.5; done
	echo "logs: $(hull logs $id | head -1)"
	echo "running: $(hull ps | grep $short | grep -c -i up)"
	hull stop $id >/dev/null || return
	echo "stopped: $(hull ps -a | grep $short | grep -o -i exited | tr A-Z a-z)"
	hull logs $id
	hull rm $id >/dev/null || return
	if hull ps -a | grep -q $short; then echo "after rm: still listed"; else echo "after rm: none"; fi
}
step run-detach detach
# hull exec into a running VM container: a second session of its agent, in the same root.
vmx() {
	hull run -d --isolation vm --name vmx --hostname vmx-host busybox sh -c 'echo hi > /tmp/mark; echo started; exec sleep 1000' >/dev/null || return
	for i in $(seq 1 240); do hull logs vmx 2>/dev/null | grep -q started && { echo up; return 0; }; sleep 0.5; done
	echo "never started"; return 1
}
step vmexec-start vmx
step vmexec-mark hull exec vmx cat /tmp/mark
step vmexec-status hull exec vmx sh -c 'exit 5'
xpiped() { echo piped | hull exec -i vmx cat; }
step vmexec-stdin xpiped
step vmexec-missing hull exec vmx nosuchcmd
step vmexec-env hull exec -e FOO=bar -w /tmp vmx sh -c 'echo FOO=$FOO cwd=$(pwd) host=$(hostname)'
step vmexec-tty hull exec -t vmx sh -c 'tty; echo tty-ok'
step vmexec-main-visible hull exec vmx sh -c 'ps | grep -c "[s]leep 1000"'
both() { hull exec vmx sh -c 'sleep 2; echo slow' & hull exec vmx echo fast; wait $!; }
step vmexec-concurrent both
step vmexec-time timed hull exec vmx true
vmxstop() {
	hull stop vmx >/dev/null || return
	echo "stopped: $(hull ps -a | grep vmx | grep -o -i exited | tr A-Z a-z)"
	hull exec vmx true; echo "exec after stop: $?"
	hull rm vmx >/dev/null && echo removed
}
step vmexec-stop vmxstop
nostray() {
	echo "containers: $(ls /var/lib/hull/containers | wc -l)"
	echo "mounts: $(grep -c /var/lib/hull/containers /proc/mounts)"
	echo "sockets: $(ls /tmp | grep -c hull-)"
}
step run-nostray nostray
# The limit is a memory cgroup in the guest; going over it is an OOM kill (137). Last:
# filling memory is slow under nested emulation.
step run-memlimit $V --memory 16m busybox sh -c 'cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max'
step run-oom timeout 300 $V --memory 8m busybox sh -c 'a=xxxxxxxx; while true; do a=$a$a; done'
true
`

// checkStep asserts a step's status and that each wanted string is in its output.
func checkStep(t *testing.T, s lab.Step, status int, want []string) {
	t.Helper()
	if s.ExitCode != status {
		t.Errorf("%s: status %d, want %d; output:\n%s", s.Name, s.ExitCode, status, s.Output)
	}
	for _, w := range want {
		if !strings.Contains(s.Output, w) {
			t.Errorf("%s: output lacks %q:\n%s", s.Name, w, s.Output)
		}
	}
}

// kernelVersion is the guest kernel's release from its build config ("6.1.192").
func kernelVersion(t *testing.T, d cache.Dir) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(d.Kernel()), "config"))
	if err != nil {
		t.Fatalf("guest kernel config: %v", err)
	}
	m := regexp.MustCompile(`Linux/x86 (\d+\.\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no version in the guest kernel's config")
	}
	return string(m[1])
}

// seconds reads the number after key on its line in out.
func seconds(t *testing.T, out, key string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key+" "); ok {
			f, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
			if err != nil {
				t.Fatalf("%s %q: %v", key, v, err)
			}
			return f
		}
	}
	t.Errorf("no %s line in:\n%s", key, out)
	return 0
}

// timing reads a phase from hull vm exec --timings ("agent ready 3.714 s").
func timing(t *testing.T, out, phase string) float64 {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(phase) + ` ([0-9.]+) s`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("no %q timing in:\n%s", phase, out)
		return 0
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}

// moduleRoot is the hull module's folder (for building the agent).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}
