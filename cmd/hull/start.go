package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// newStartCmd is `hull start`: start created containers in the background.
func newStartCmd(g *globals, io stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "start CONTAINER...",
		Short: "Start created containers in the background",
		Long:  "start runs containers made by hull create detached, as hull run -d does; hull logs\nshows their output.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newManager(g, io)
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				c, err := m.Get(cmd.Context(), a)
				if err == nil {
					err = m.StartDetached(cmd.Context(), c)
				}
				if err != nil {
					errs = append(errs, startError(io, err))
					continue
				}
				fmt.Fprintln(io.out, a)
			}
			return errors.Join(errs...)
		},
	}
}
