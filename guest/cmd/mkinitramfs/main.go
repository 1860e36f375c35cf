// Command mkinitramfs builds the hull guest initramfs (hull-init as /init) into the cache
// and prints its path. scripts/initramfs runs it.
//
//	mkinitramfs [--cache DIR] [--debug-shell] [--agent FILE] [--source DIR] [--json]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/guest/initramfs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "mkinitramfs: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("mkinitramfs", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := cache.DefaultDir
	if v := os.Getenv("HULL_CACHE"); v != "" {
		dir = v
	}
	cacheDir := fs.String("cache", dir, "cache folder; the initramfs goes to <cache>/initramfs")
	debug := fs.Bool("debug-shell", false, "add u-root's gosh, ls, cat, mount, dmesg and ps in /bbin (about 30 s more)")
	agent := fs.String("agent", "", "prebuilt static hull-init to use instead of building it")
	src := fs.String("source", ".", "the hull source folder")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	verbose := fs.BoolP("verbose", "v", false, "log the build")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	abs, err := filepath.Abs(*src)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := initramfs.Build(ctx, initramfs.Options{
		Dir:        filepath.Dir(cache.Dir(*cacheDir).Initramfs()),
		Agent:      *agent,
		Source:     abs,
		DebugShell: *debug,
		Log:        slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			initramfs.Result
			Seconds float64 `json:"seconds"`
		}{res, time.Since(start).Seconds()})
	}
	fmt.Fprintln(stdout, res.Path)
	return nil
}
