package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hullvm/hull/container"
)

// newPsCmd is `hull ps`: list containers.
func newPsCmd(g *globals, io stdio) *cobra.Command {
	var all, quiet, noTrunc, asJSON bool
	c := &cobra.Command{
		Use:   "ps [-a] [-q] [--json]",
		Short: "List containers",
		Long: "ps lists running containers; -a lists all. A container whose supervising hull process\n" +
			"was killed shows its true state: Exited (unknown) once its process is gone.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := newManager(g, io)
			if err != nil {
				return err
			}
			list, err := m.List(cmd.Context())
			if err != nil {
				return err
			}
			var shown []*container.Container
			for i := len(list) - 1; i >= 0; i-- { // newest first, as Docker
				if all || list[i].Status == container.Running {
					shown = append(shown, list[i])
				}
			}
			switch {
			case asJSON:
				out := make([]container.State, 0, len(shown))
				for _, c := range shown {
					out = append(out, c.State)
				}
				enc := json.NewEncoder(io.out)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			case quiet:
				for _, c := range shown {
					fmt.Fprintln(io.out, shortID(c.ID, noTrunc))
				}
				return nil
			}
			tw := tabwriter.NewWriter(io.out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tISOLATION\tNAMES")
			for _, c := range shown {
				cmdline := strings.Join(c.Command, " ")
				if !noTrunc && len(cmdline) > 20 {
					cmdline = cmdline[:19] + "…"
				}
				fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s\t%s\t%s\n", shortID(c.ID, noTrunc), c.Image, cmdline, ago(c.Created), statusText(c), c.Isolation, c.Name)
			}
			return tw.Flush()
		},
	}
	f := c.Flags()
	f.BoolVarP(&all, "all", "a", false, "show all containers, not only running ones")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs and commands")
	f.BoolVar(&asJSON, "json", false, "print the containers' records as JSON")
	return c
}

// statusText is Docker's STATUS column.
func statusText(c *container.Container) string {
	switch c.Status {
	case container.Running:
		return "Up " + duration(time.Since(c.Started))
	case container.Exited:
		code := fmt.Sprint(c.ExitCode)
		if c.ExitCode == container.ExitUnknown {
			code = "unknown"
		}
		if c.Finished.IsZero() {
			return "Exited (" + code + ")"
		}
		return "Exited (" + code + ") " + duration(time.Since(c.Finished)) + " ago"
	}
	return "Created"
}

func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "Less than a second"
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
