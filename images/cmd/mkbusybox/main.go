// Command mkbusybox builds hull's embedded default image, busybox:latest, as an OCI
// image layout from a static busybox binary (Debian's busybox-static), and can load it
// into an image store. scripts/busybox-image runs it.
//
// The layer holds /bin/busybox and a symlink for each applet under /bin, /etc/passwd
// and /etc/group with root, /tmp and /root. Every time stamp is fixed, so the same
// busybox binary always gives the same digests.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullvm/hull/images"
)

// stamp is every file's modification time and the image's creation time.
var stamp = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "mkbusybox: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mkbusybox", flag.ContinueOnError)
	bb := fs.String("busybox", "/bin/busybox", "static busybox binary to package")
	dir := fs.String("out", "", "OCI image layout directory to write (must not exist)")
	name := fs.String("tag", "busybox:latest", "name the image carries")
	root := fs.String("root", "", "also load the layout into the image store under this state directory")
	load := fs.String("load", "", "only load this existing layout into -root")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *load != "" {
		return loadInto(ctx, *root, *load, out)
	}
	if *dir == "" {
		return errors.New("-out is required")
	}
	if err := build(*bb, *dir, *name); err != nil {
		return err
	}
	fmt.Fprintln(out, *dir)
	if *root != "" {
		return loadInto(ctx, *root, *dir, out)
	}
	return nil
}

func loadInto(ctx context.Context, root, dir string, out io.Writer) error {
	if root == "" {
		return errors.New("-root is required to load")
	}
	s, err := images.Open(root)
	if err != nil {
		return err
	}
	imgs, err := s.Load(ctx, dir)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if _, err := s.Disks(ctx, img); err != nil {
			return err
		}
		fmt.Fprintf(out, "loaded %s as %s into %s\n", img.ID, strings.Join(img.Names, ", "), root)
	}
	return nil
}

func build(bb, dir, name string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s exists: remove it first", dir)
	}
	layerTar, err := rootfs(bb)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: stamp}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.History = []v1.History{{Created: v1.Time{Time: stamp}, CreatedBy: "mkbusybox " + path.Base(bb)}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{
		ocispec.AnnotationRefName:  name,
		"io.containerd.image.name": name,
	}), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
}

// rootfs writes the layer: busybox, its applet links, a minimal /etc, /tmp and /root.
func rootfs(bb string) ([]byte, error) {
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bb, err)
	}
	applets := strings.Fields(string(list))
	slices.Sort(applets)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(n string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Name: n + "/", Typeflag: tar.TypeDir, Mode: mode, ModTime: stamp, Format: tar.FormatPAX})
	}
	file := func(n string, mode int64, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(b)), ModTime: stamp, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	steps := []error{
		dir("bin", 0o755), file("bin/busybox", 0o755, bin),
		dir("etc", 0o755),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")),
		file("etc/group", 0o644, []byte("root:x:0:\n")),
		dir("root", 0o700), dir("tmp", 0o1777),
	}
	if err := errors.Join(steps...); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a == "busybox" || strings.ContainsAny(a, "/.") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", ModTime: stamp, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
