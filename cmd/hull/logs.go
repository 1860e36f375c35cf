package main

import (
	"github.com/spf13/cobra"
)

// newLogsCmd is `hull logs`: a detached container's output.
func newLogsCmd(g *globals, io stdio) *cobra.Command {
	var follow bool
	c := &cobra.Command{
		Use:   "logs [-f] CONTAINER",
		Short: "Show a detached container's output",
		Long: "logs prints what a container started with -d (or hull start) wrote to its standard output\n" +
			"and error; -f keeps printing until the container exits.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newManager(g, io)
			if err != nil {
				return err
			}
			return m.Logs(cmd.Context(), args[0], follow, io.out)
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "follow the output until the container exits")
	return c
}
