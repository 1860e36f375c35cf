package main

import (
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hullvm/hull/images"
)

// openImages opens the image store under --root, with progress on standard error (bars
// on a terminal, plain lines otherwise; none when quiet). done waits for the bars.
func openImages(g *globals, io stdio, quiet bool) (s *images.Store, done func(), err error) {
	lvl := slog.LevelWarn
	if g.debug {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: lvl}))
	opts := []images.Option{images.WithLogger(log)}
	done = func() {}
	if !quiet {
		r := images.NewProgress(io.err, isTerminal(io.err))
		opts = append(opts, images.WithProgress(r))
		done = r.Wait
	}
	s, err = images.Open(g.root, opts...)
	if err != nil {
		return nil, nil, err
	}
	return s, done, nil
}

// isTerminal reports whether w is a terminal with a size (bars need a width: a pty
// nobody sized gets plain lines).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0
}
