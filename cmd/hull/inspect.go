package main

import (
	"encoding/json"
	"errors"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/hullvm/hull/container"
)

// containerInspect is one container as `hull inspect` prints it: its record, directory and
// OCI bundle.
type containerInspect struct {
	container.State
	Dir    string      `json:"dir"`
	Bundle *specs.Spec `json:"bundle,omitempty"`
}

// newInspectCmd is `hull inspect`: containers' records as JSON.
func newInspectCmd(g *globals, io stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers' records and OCI bundles as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newManager(g, io)
			if err != nil {
				return err
			}
			var out []containerInspect
			var errs []error
			for _, a := range args {
				c, err := m.Get(cmd.Context(), a)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				spec, _ := m.Spec(c)
				out = append(out, containerInspect{State: c.State, Dir: c.Dir, Bundle: spec})
			}
			enc := json.NewEncoder(io.out)
			enc.SetIndent("", "  ")
			if len(out) > 0 {
				if err := enc.Encode(out); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
}
