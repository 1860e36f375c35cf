package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// newStopCmd is `hull stop`: SIGTERM, then SIGKILL after a timeout.
func newStopCmd(g *globals, io stdio) *cobra.Command {
	var secs int
	c := &cobra.Command{
		Use:   "stop [-t SECONDS] CONTAINER...",
		Short: "Stop running containers",
		Long: "stop sends SIGTERM to each container's main process and SIGKILL after the timeout (10 s),\n" +
			"then waits until it has exited. Stopping a stopped container does nothing.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if secs < 0 {
				return fmt.Errorf("--time %d: give a number of seconds, 0 or more", secs)
			}
			m, err := newManager(g, io)
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				if _, err := m.Stop(cmd.Context(), a, time.Duration(secs)*time.Second); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(io.out, a)
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().IntVarP(&secs, "time", "t", 10, "seconds to wait before killing")
	return c
}
