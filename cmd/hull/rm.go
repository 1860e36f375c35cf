package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// newRmCmd is `hull rm`: remove containers and everything they hold.
func newRmCmd(g *globals, io stdio) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "rm [-f] CONTAINER...",
		Short: "Remove containers",
		Long: "rm removes stopped containers: their writable layer, mounts, loop devices, cgroups,\n" +
			"runtime state and logs. -f kills a running container first. It also reclaims what a\n" +
			"killed hull process left behind.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newManager(g, io)
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				if err := m.Remove(cmd.Context(), a, force); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(io.out, a)
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "kill a running container before removing it")
	return c
}
