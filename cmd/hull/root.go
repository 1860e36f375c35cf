package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/cache"
)

// Exit statuses follow Docker's: 125 for hull's own errors, 126 when the command cannot
// be invoked, 127 when it is not found, the container's status otherwise.
const (
	exitHull       = 125
	exitCannotExec = 126
	exitNotFound   = 127
)

// stdio is the process's standard streams, passed in so commands are testable.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// globals are the flags every command sees.
type globals struct {
	root  string // state directory
	cache cache.Dir
	debug bool
}

// exitError carries an exit status out of a command without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run builds the command tree, runs it and returns the process exit status.
func run(ctx context.Context, args []string, io stdio) int {
	g := &globals{}
	root := &cobra.Command{
		Use:           "hull",
		Short:         "Run OCI images as containers or in KVM microVMs",
		Long:          "hull runs the same OCI image either as a shared-kernel container (through runc or crun)\nor inside a KVM microVM with its own Linux kernel, behind one Docker-like CLI.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(io.in)
	root.SetOut(io.out)
	root.SetErr(io.err)
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.root, "root", "/var/lib/hull", "state directory (images, containers)")
	pf.StringVar((*string)(&g.cache), "cache", envOr("HULL_CACHE", cache.DefaultDir), "cache directory filled by setup (kernel, initramfs, lab)")
	pf.BoolVarP(&g.debug, "debug", "D", false, "log debug messages")

	for _, c := range commands(g, io) {
		root.AddCommand(c)
	}

	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(io.err, "hull: %v\n", err)
	return exitHull
}
