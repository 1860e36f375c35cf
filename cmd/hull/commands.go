package main

import "github.com/spf13/cobra"

// commands lists the top-level subcommands; each lives in its own file.
func commands(g *globals, io stdio) []*cobra.Command {
	return []*cobra.Command{
		newDoctorCmd(g, io),
		newRunCmd(g, io), newCreateCmd(g, io), newStartCmd(g, io), newPsCmd(g, io), newLogsCmd(g, io), newStopCmd(g, io), newKillCmd(g, io), newRmCmd(g, io), newInspectCmd(g, io), newExecCmd(g, io), newShimCmd(g, io),
		newBenchCmd(g, io),
		newLabCmd(g, io),
		newVMCmd(g, io),
		newImagesCmd(g, io), newImageCmd(g, io), newLoadCmd(g, io), newImportCmd(g, io), newPullCmd(g, io), newPushCmd(g, io), newTagCmd(g, io), newRmiCmd(g, io),
	}
}
