package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func newRmiCmd(g *globals, io stdio) *cobra.Command {
	return rmiCmd(g, io, "rmi [OPTIONS] IMAGE [IMAGE...]")
}

// rmiCmd is `hull rmi`, and `hull image rm` under another name.
func rmiCmd(g *globals, io stdio, use string) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   use,
		Short: "Remove images (untag, then delete what nothing names)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := openImages(g, io, true)
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				rm, err := s.Remove(c.Context(), a, force)
				if rm != nil {
					for _, n := range rm.Untagged {
						fmt.Fprintf(io.out, "Untagged: %s\n", n)
					}
					for _, d := range rm.Deleted {
						fmt.Fprintf(io.out, "Deleted: %s\n", d)
					}
				}
				if err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "remove an image by ID even when it has several names")
	return c
}
