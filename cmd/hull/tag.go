package main

import "github.com/spf13/cobra"

func newTagCmd(g *globals, io stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Give an image another name",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := openImages(g, io, true)
			if err != nil {
				return err
			}
			return s.Tag(c.Context(), args[0], args[1])
		},
	}
}
