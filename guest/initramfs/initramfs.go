package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// AgentPackage is the hull-init main package, built static as /init.
const AgentPackage = "./guest/cmd/hull-init"

// DebugCommands returns the u-root commands a debug-shell initramfs carries in /bbin,
// one gobusybox binary. The agent shows them to a process at /.hull/bin (guest.Run.Debug).
func DebugCommands() []string {
	return []string{
		"github.com/u-root/u-root/cmds/core/gosh",
		"github.com/u-root/u-root/cmds/core/ls",
		"github.com/u-root/u-root/cmds/core/cat",
		"github.com/u-root/u-root/cmds/core/mount",
		"github.com/u-root/u-root/cmds/core/dmesg",
		"github.com/u-root/u-root/cmds/core/ps",
	}
}

// Options says what to build and where.
type Options struct {
	// Dir receives <hash>.cpio.gz and the Link symlink ($HULL_CACHE/initramfs).
	Dir string
	// Link is the symlink in Dir updated to the result; "current.cpio.gz" by default,
	// which is cache.Dir.Initramfs().
	Link string
	// Agent is a prebuilt static hull-init; empty builds AgentPackage from Source.
	Agent string
	// Source is the hull module's folder (for the agent and the debug commands).
	Source string
	// DebugShell adds DebugCommands.
	DebugShell bool
	Log        *slog.Logger
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return errors.New("initramfs: no output folder")
	}
	if o.Agent == "" && o.Source == "" {
		return errors.New("initramfs: give a prebuilt agent or the hull source folder to build it from")
	}
	return nil
}

// Result is a built initramfs.
type Result struct {
	Path string `json:"path"` // Dir/<hash>.cpio.gz
	Hash string `json:"hash"` // sha256 of the file, hex
	Size int64  `json:"size"`
}

// Build builds the initramfs, writes it as Dir/<hash>.cpio.gz and points Dir/Link at
// it. The archive is reproducible: fixed mtimes, owners and order, a gzip header
// without time or name, and an agent built with -trimpath and no build id. An input
// already built (same agent binary, same options) is reused without running
// mkuimage.
func Build(ctx context.Context, o Options) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	if o.Link == "" {
		o.Link = "current.cpio.gz"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("initramfs: %w", err)
	}
	tmp, err := os.MkdirTemp(o.Dir, "build-")
	if err != nil {
		return Result{}, fmt.Errorf("initramfs: %w", err)
	}
	defer os.RemoveAll(tmp)

	agent := o.Agent
	if agent == "" {
		agent = filepath.Join(tmp, "hull-init")
		if err := BuildAgent(ctx, o.Source, agent); err != nil {
			return Result{}, err
		}
	}
	key, err := inputKey(agent, o)
	if err != nil {
		return Result{}, err
	}
	byInput := filepath.Join(o.Dir, "by-input", key)
	if name, err := os.Readlink(byInput); err == nil {
		p := filepath.Join(o.Dir, filepath.Base(name))
		if hash, size, err := hashFile(p); err == nil {
			o.Log.Info("initramfs unchanged", "path", p)
			return finish(o, p, hash, size, byInput)
		}
	}

	raw := filepath.Join(tmp, "initramfs.cpio")
	mods := []uimage.Modifier{
		uimage.WithEnv(golang.DisableCGO()),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithFiles(agent + ":init"),
		uimage.WithSkipLDD(), // the agent is static
		uimage.WithCPIOOutput(raw),
		uimage.WithTempDir(tmp),
	}
	if o.DebugShell {
		mods = append(mods, uimage.WithBusyboxCommands(DebugCommands()...))
	}
	l := llog.New(slog.LevelWarn, func(format string, v ...any) { o.Log.Info(fmt.Sprintf(format, v...)) })
	if err := inDir(o.Source, func() error { return uimage.Create(l, mods...) }); err != nil {
		return Result{}, fmt.Errorf("initramfs: mkuimage: %w", err)
	}

	gz := filepath.Join(tmp, "initramfs.cpio.gz")
	hash, size, err := compress(raw, gz)
	if err != nil {
		return Result{}, err
	}
	p := filepath.Join(o.Dir, hash[:16]+".cpio.gz")
	if err := os.Rename(gz, p); err != nil {
		return Result{}, fmt.Errorf("initramfs: %w", err)
	}
	return finish(o, p, hash, size, byInput)
}

// finish points the Link and the input key at p.
func finish(o Options, p, hash string, size int64, byInput string) (Result, error) {
	if err := os.MkdirAll(filepath.Dir(byInput), 0o755); err != nil {
		return Result{}, err
	}
	if err := symlink(filepath.Join("..", filepath.Base(p)), byInput); err != nil {
		return Result{}, err
	}
	if err := symlink(filepath.Base(p), filepath.Join(o.Dir, o.Link)); err != nil {
		return Result{}, err
	}
	return Result{Path: p, Hash: hash, Size: size}, nil
}

// symlink atomically makes link point at target.
func symlink(target, link string) error {
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// inputKey names what an initramfs is built from: the agent binary and the options.
func inputKey(agent string, o Options) (string, error) {
	h := sha256.New()
	f, err := os.Open(agent)
	if err != nil {
		return "", fmt.Errorf("initramfs: agent: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("initramfs: agent: %w", err)
	}
	if o.DebugShell {
		fmt.Fprintf(h, "\ndebug %s", strings.Join(DebugCommands(), " "))
		// The debug commands' code comes from the module graph.
		if b, err := os.ReadFile(filepath.Join(o.Source, "go.sum")); err == nil {
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// inDir runs fn with the working directory set to dir (mkuimage resolves Go packages
// from the working directory's module). Empty dir means the current one.
func inDir(dir string, fn func() error) error {
	if dir == "" {
		return fn()
	}
	old, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.Chdir(dir); err != nil {
		return err
	}
	defer os.Chdir(old)
	return fn()
}

// BuildAgent builds hull-init static and reproducibly from the hull source at src.
func BuildAgent(ctx context.Context, src, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", out, AgentPackage)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initramfs: build hull-init: %w\n%s", err, b)
	}
	return nil
}

// compress gzips src into dst without a time or name in the header and returns the
// sha256 and size of dst.
func compress(src, dst string) (string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, fmt.Errorf("initramfs: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return "", 0, fmt.Errorf("initramfs: %w", err)
	}
	defer out.Close()
	h := sha256.New()
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(out, h), gzip.BestCompression)
	if _, err := io.Copy(zw, in); err != nil {
		return "", 0, fmt.Errorf("initramfs: compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", 0, fmt.Errorf("initramfs: compress: %w", err)
	}
	fi, err := out.Stat()
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), fi.Size(), out.Close()
}

// Entry is one file of an initramfs.
type Entry struct {
	Name string
	Mode uint64 // cpio mode: type and permission bits
	Size uint64
	Link string // a symlink's target
}

// maxUnpacked caps how much List decompresses.
const maxUnpacked = 1 << 30

// List reads a gzip-compressed newc cpio archive and returns its entries in order.
func List(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, maxUnpacked+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxUnpacked {
		return nil, fmt.Errorf("%s: unpacks to more than %d bytes", path, maxUnpacked)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Entry
	for _, r := range recs {
		e := Entry{Name: r.Name, Mode: r.Mode, Size: r.FileSize}
		if r.Mode&cpio.S_IFMT == cpio.S_IFLNK {
			l, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(min(r.FileSize, 4096))))
			if err != nil {
				return nil, err
			}
			e.Link = string(l)
		}
		out = append(out, e)
	}
	return out, nil
}

// ReadFile returns one file's content from a gzip-compressed cpio archive.
func ReadFile(archive, name string) ([]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(zr, maxUnpacked))
	if err != nil {
		return nil, err
	}
	rr := cpio.Newc.Reader(bytes.NewReader(b))
	for {
		r, err := rr.ReadRecord()
		if err != nil {
			return nil, fmt.Errorf("%s in %s: %w", name, archive, err)
		}
		if r.Name == name {
			return io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		}
	}
}
