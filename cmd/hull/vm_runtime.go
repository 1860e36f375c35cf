package main

import (
	"log/slog"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/container"
	"github.com/hullvm/hull/container/microvm"
)

// newVMRuntime is the microVM runtime (--isolation vm): the cache's guest kernel
// (cache.Dir.BootKernel) and initramfs.
func newVMRuntime(g *globals, io stdio, lvl slog.Level) (container.Runtime, error) {
	d := cache.Dir(g.cache)
	return microvm.New(d.BootKernel(), d.Initramfs(), slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: lvl})))
}
