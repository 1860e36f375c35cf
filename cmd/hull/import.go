package main

import (
	"encoding/json"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/hullvm/hull/images"
)

func newImportCmd(g *globals, io stdio) *cobra.Command {
	var changes []string
	var quiet bool
	c := &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Make an image from a root filesystem tarball",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			var o images.ImportOptions
			if len(args) == 2 {
				o.Name = args[1]
			}
			for _, ch := range changes {
				if err := applyChange(&o.Config, ch); err != nil {
					return err
				}
			}
			s, done, err := openImages(g, io, quiet)
			if err != nil {
				return err
			}
			defer done()
			var img *images.Image
			if args[0] == "-" {
				img, err = s.ImportReader(c.Context(), io.in, o)
			} else {
				img, err = s.Import(c.Context(), args[0], o)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(io.out, img.ID)
			return nil
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress the progress output")
	c.Flags().StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction to the image: CMD, ENTRYPOINT, ENV, WORKDIR, USER")
	return c
}

// applyChange applies one --change instruction.
func applyChange(cfg *ocispec.ImageConfig, ch string) error {
	verb, arg, _ := strings.Cut(strings.TrimSpace(ch), " ")
	arg = strings.TrimSpace(arg)
	cmdForm := func() ([]string, error) {
		if strings.HasPrefix(arg, "[") {
			var v []string
			if err := json.Unmarshal([]byte(arg), &v); err != nil {
				return nil, fmt.Errorf("--change %q: %w", ch, err)
			}
			return v, nil
		}
		return []string{"/bin/sh", "-c", arg}, nil
	}
	var err error
	switch strings.ToUpper(verb) {
	case "CMD":
		cfg.Cmd, err = cmdForm()
	case "ENTRYPOINT":
		cfg.Entrypoint, err = cmdForm()
	case "ENV":
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			k, v, _ = strings.Cut(arg, " ")
		}
		cfg.Env = append(cfg.Env, k+"="+strings.TrimSpace(v))
	case "WORKDIR":
		cfg.WorkingDir = arg
	case "USER":
		cfg.User = arg
	default:
		return fmt.Errorf("--change %q: unsupported instruction %s (use CMD, ENTRYPOINT, ENV, WORKDIR or USER)", ch, verb)
	}
	return err
}
