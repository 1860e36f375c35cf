package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// newKillCmd is `hull kill`: send a signal to containers.
func newKillCmd(g *globals, io stdio) *cobra.Command {
	var sigName string
	c := &cobra.Command{
		Use:   "kill [-s SIGNAL] CONTAINER...",
		Short: "Send a signal to running containers",
		Long:  "kill sends SIGNAL (default KILL; a name such as TERM or SIGHUP, or a number) to each\ncontainer's main process.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, err := parseSignal(sigName)
			if err != nil {
				return err
			}
			m, err := newManager(g, io)
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				if err := m.Kill(cmd.Context(), a, sig); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(io.out, a)
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().StringVarP(&sigName, "signal", "s", "KILL", "signal to send")
	return c
}

// parseSignal reads a signal name (KILL, SIGKILL, kill) or number.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %d is out of range 1 to 64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: use a name such as TERM or a number", s)
}
