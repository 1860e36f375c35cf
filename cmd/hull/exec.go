package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/container"
)

// newExecCmd is `hull exec`: run a command in a running container.
func newExecCmd(g *globals, io stdio) *cobra.Command {
	var interactive, tty bool
	var env []string
	var workdir, user string
	c := &cobra.Command{
		Use:   "exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long:  "exec runs COMMAND in a running container's namespaces and cgroup, with its bundle's\nenvironment and user unless given, and exits with the command's status.",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newManager(g, io)
			if err != nil {
				return err
			}
			e := container.ExecConfig{Args: args[1:], Workdir: workdir, User: user, TTY: tty}
			for _, kv := range env {
				if strings.Contains(kv, "=") {
					e.Env = append(e.Env, kv)
				} else if v, ok := os.LookupEnv(kv); ok {
					e.Env = append(e.Env, kv+"="+v)
				}
			}
			stdio := container.IO{Out: io.out, Err: io.err}
			if interactive {
				stdio.In = io.in
			}
			code, err := m.Exec(cmd.Context(), args[0], e, stdio)
			if err != nil {
				return startError(io, err)
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&interactive, "interactive", "i", false, "pass standard input to the command")
	f.BoolVarP(&tty, "tty", "t", false, "give the command a terminal")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable K=V")
	f.StringVarP(&workdir, "workdir", "w", "", "working directory inside the container")
	f.StringVarP(&user, "user", "u", "", "user as uid[:gid] or name[:group]")
	return c
}
