package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

func newImageCmd(g *globals, io stdio) *cobra.Command {
	c := &cobra.Command{
		Use:   "image",
		Short: "Manage images",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(
		imagesLsCmd(g, io, "ls [OPTIONS] [REPOSITORY[:TAG]]", []string{"list"}),
		newImageInspectCmd(g, io),
		newImagePruneCmd(g, io),
		rmiCmd(g, io, "rm [OPTIONS] IMAGE [IMAGE...]"),
		newTagCmd(g, io),
		newLoadCmd(g, io),
		newImportCmd(g, io),
		newPullCmd(g, io),
		newPushCmd(g, io),
	)
	return c
}

// inspected is one image as `hull image inspect` prints it (Docker's field names).
type inspected struct {
	ID           string              `json:"Id"`
	RepoTags     []string            `json:"RepoTags"`
	Manifest     string              `json:"Manifest"`
	Created      *time.Time          `json:"Created,omitempty"`
	Size         int64               `json:"Size"`
	Architecture string              `json:"Architecture"`
	Os           string              `json:"Os"`
	Config       ocispec.ImageConfig `json:"Config"`
	RootFS       inspectedRootFS     `json:"RootFS"`
	LayerDisks   []string            `json:"LayerDisks"`
}

type inspectedRootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

func newImageInspectCmd(g *globals, io stdio) *cobra.Command {
	var disks bool
	c := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Show images' configuration and layers as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, done, err := openImages(g, io, !disks)
			if err != nil {
				return err
			}
			defer done()
			out := []inspected{}
			var errs []error
			for _, a := range args {
				img, err := s.Get(c.Context(), a)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				in := inspected{
					ID: string(img.ID), RepoTags: img.Names, Manifest: string(img.Manifest), Size: img.Size,
					Architecture: img.Config.Architecture, Os: img.Config.OS, Config: img.Config.Config,
					RootFS: inspectedRootFS{Type: img.Config.RootFS.Type}, LayerDisks: []string{},
				}
				if in.RepoTags == nil {
					in.RepoTags = []string{}
				}
				if !img.Created.IsZero() {
					in.Created = &img.Created
				}
				for _, l := range img.Layers {
					in.RootFS.Layers = append(in.RootFS.Layers, string(l.DiffID))
				}
				if disks {
					in.LayerDisks, err = s.Disks(c.Context(), img)
					if err != nil {
						errs = append(errs, err)
						continue
					}
				}
				out = append(out, in)
			}
			e := json.NewEncoder(io.out)
			e.SetIndent("", "    ")
			if err := e.Encode(out); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVar(&disks, "disks", false, "also build (if needed) and list the layer disks, lowest first")
	return c
}

func newImagePruneCmd(g *globals, io stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove blobs and layer disks no image uses, and leftovers of interrupted work",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, _, err := openImages(g, io, true)
			if err != nil {
				return err
			}
			rep, err := s.Prune(c.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(io.out, "Deleted %d blobs, %d layer disks, %d leftovers\nTotal reclaimed space: %s\n", rep.Blobs, rep.Disks, rep.Temps, sizeStr(rep.Bytes))
			return nil
		},
	}
}
