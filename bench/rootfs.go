package bench

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Applets are the busybox commands the bench image links.
var applets = []string{"sh", "echo", "cat", "true", "false", "sleep", "ls", "mkdir", "rm", "uname", "head", "dd", "sync"}

// Rootfs builds the bench image's root filesystem tarball in dir: a static busybox with
// its applets, and the workload (built static from bench/cmd/workload) at /workload.
// It returns the tarball's path.
func Rootfs(ctx context.Context, dir, busybox string) (string, error) {
	wl := filepath.Join(dir, "workload")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", wl, "github.com/hullvm/hull/bench/cmd/workload")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the bench workload: %v\n%s", err, out)
	}
	p := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(f)
	dirs := []string{"bin", "etc", "tmp", "proc", "sys", "dev", "vol", "root"}
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode}); err != nil {
			return "", err
		}
	}
	files := []struct{ name, src string }{{"bin/busybox", busybox}, {"workload", wl}}
	for _, fl := range files {
		if err := addFile(tw, fl.name, fl.src); err != nil {
			return "", err
		}
	}
	for _, a := range applets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return "", err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\n"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))}); err != nil {
		return "", err
	}
	if _, err := io.WriteString(tw, passwd); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return p, f.Close()
}

func addFile(tw *tar.Writer, name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: st.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// extract unpacks the rootfs tarball with the host tar into dir (for runc's bundle).
func extract(ctx context.Context, tarball, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "tar", "-C", dir, "-xf", tarball).CombinedOutput()
	if err != nil {
		return fmt.Errorf("extract %s: %v: %s", tarball, err, strings.TrimSpace(string(out)))
	}
	return nil
}
