package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/images"
)

func newLoadCmd(g *globals, io stdio) *cobra.Command {
	var input string
	var quiet bool
	c := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load images from a docker save tarball or an OCI image layout",
		Long: "Load images from a docker save tarball (legacy or OCI form; plain, gzip or zstd),\n" +
			"from an OCI image layout directory, or from standard input.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if (input == "" || input == "-") && isTerminal(io.in) {
				return fmt.Errorf("load: standard input is a terminal: give a file with -i FILE, or pipe a tarball in")
			}
			s, done, err := openImages(g, io, quiet)
			if err != nil {
				return err
			}
			var imgs []*images.Image
			if input == "" || input == "-" {
				imgs, err = s.LoadReader(c.Context(), io.in)
			} else {
				imgs, err = s.Load(c.Context(), input)
			}
			done()
			for _, img := range imgs {
				printLoaded(io, img)
			}
			return err
		},
	}
	c.Flags().StringVarP(&input, "input", "i", "", "read from a tar archive file or an OCI layout directory, instead of standard input")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress the progress output")
	return c
}

func printLoaded(io stdio, img *images.Image) {
	if len(img.Names) == 0 {
		fmt.Fprintf(io.out, "Loaded image ID: %s\n", img.ID)
	}
	for _, n := range img.Names {
		fmt.Fprintf(io.out, "Loaded image: %s\n", n)
	}
}
