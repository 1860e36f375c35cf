package main

import "github.com/spf13/cobra"

// commands lists the top-level subcommands; each lives in its own file.
func commands(g *globals, io stdio) []*cobra.Command {
	return []*cobra.Command{
		newBenchCmd(g, io),
	}
}
