package images

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hullvm/hull/internal/testenv"
)

// dockerCLI picks Debian's docker client (docker.io), which /usr/local/bin/docker may
// shadow with another build.
func dockerCLI(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	return testenv.RequireBinary(t, "docker")
}

// dockerEngine returns the -H address of a Docker engine: the running one if it
// answers, else one the test starts (containerd and dockerd with their own roots and
// sockets in a temporary directory, stopped in Cleanup).
func dockerEngine(t *testing.T, cli string) string {
	t.Helper()
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	if answers(cli, host) {
		return host
	}
	containerd := testenv.RequireBinary(t, "containerd")
	dockerd := testenv.RequireBinary(t, "dockerd")
	dir, err := os.MkdirTemp("", "hull-docker-") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var logs bytes.Buffer
	start := func(bin string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	csock := filepath.Join(dir, "containerd.sock")
	start(containerd, "--root", filepath.Join(dir, "containerd"), "--state", filepath.Join(dir, "cstate"), "--address", csock)
	host = "unix://" + filepath.Join(dir, "docker.sock")
	start(dockerd, "--iptables=false", "--bridge=none", "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", host, "--containerd", csock)
	for i := 0; i < 120; i++ {
		if answers(cli, host) {
			return host
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("the Docker engine the test started did not answer within 30 s:\n%s", logs.String())
	return ""
}

func answers(cli, host string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, cli, "-H", host, "version", "--format", "{{.Server.Version}}").Run() == nil
}

// TestDockerSaveLoads loads a tarball written by a real `docker save` and checks that its
// layer mounts with the content docker was given.
func TestDockerSaveLoads(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "mkfs.erofs")
	testenv.RequireFile(t, "/bin/busybox", "a static busybox (Debian's busybox-static)")
	cli := dockerCLI(t)
	host := dockerEngine(t, cli)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rootfs := writeFile(t, filepath.Join(dir, "rootfs.tar"), tarOf(t,
		ent{name: "bin/", typ: tar.TypeDir},
		ent{name: "bin/busybox", body: string(bb), mode: 0o755},
		ent{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	))
	tag := make([]byte, 6)
	rand.Read(tag)
	name := "hull-test/busybox:" + hex.EncodeToString(tag)
	docker := func(args ...string) {
		t.Helper()
		out, err := exec.Command(cli, append([]string{"-H", host}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	docker("import", "--change", "CMD [\"/bin/sh\"]", rootfs, name)
	t.Cleanup(func() { exec.Command(cli, "-H", host, "rmi", name).Run() })
	saved := filepath.Join(dir, "saved.tar")
	docker("save", "-o", saved, name)

	s := openStore(t)
	imgs, err := s.Load(bg(), saved)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || !slices.Contains(imgs[0].Names, name) {
		t.Fatalf("loaded %+v, want one image named %s", imgs, name)
	}
	img := imgs[0]
	if !slices.Equal(img.Config.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("config Cmd = %q, want [/bin/sh]", img.Config.Config.Cmd)
	}
	disks, err := s.Disks(bg(), img)
	if err != nil {
		t.Fatal(err)
	}
	root := mountImage(t, disks)
	got, err := os.ReadFile(filepath.Join(root, "bin", "busybox"))
	if err != nil || !bytes.Equal(got, bb) {
		t.Errorf("bin/busybox in the mounted image: %d bytes, err %v; want the %d bytes of /bin/busybox", len(got), err, len(bb))
	}
	if l, err := os.Readlink(filepath.Join(root, "bin", "sh")); err != nil || l != "busybox" {
		t.Errorf("bin/sh -> %q, %v; want busybox", l, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("tmp: %v, %v; want a sticky directory", fi, err)
	}
}
