package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newPushCmd(g *globals, io stdio) *cobra.Command {
	var quiet bool
	c := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Long:  "Upload an image to a registry unchanged (its manifest keeps its digest).",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, done, err := openImages(g, io, quiet)
			if err != nil {
				return err
			}
			d, err := s.Push(c.Context(), args[0])
			done()
			if err != nil {
				return err
			}
			fmt.Fprintf(io.out, "%s: digest: %s\n", args[0], d)
			return nil
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress the progress output")
	return c
}
