package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/images"
)

func newPullCmd(g *globals, io stdio) *cobra.Command {
	var quiet bool
	c := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Long: "Download an image from a registry: linux/amd64 from a multi-platform index, with\n" +
			"credentials from the Docker config file. Registries on localhost or 127.0.0.0/8\n" +
			"are reached over plain HTTP.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, done, err := openImages(g, io, quiet)
			if err != nil {
				return err
			}
			img, err := s.Pull(c.Context(), args[0])
			done()
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(io.out, args[0])
				return nil
			}
			pulled(io.out, img, args[0])
			return nil
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress the progress output")
	return c
}

// pulled says what pulling ref got, as Docker does: the manifest's digest and a status.
func pulled(w io.Writer, img *images.Image, ref string) {
	fmt.Fprintf(w, "Digest: %s\nStatus: Image is up to date for %s\n", img.Manifest, ref)
}
