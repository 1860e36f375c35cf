package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

type imagesOpts struct {
	quiet, json, noTrunc bool
}

func newImagesCmd(g *globals, io stdio) *cobra.Command {
	return imagesLsCmd(g, io, "images [OPTIONS] [REPOSITORY[:TAG]]", nil)
}

// imagesLsCmd is `hull images`, and `hull image ls` under another name.
func imagesLsCmd(g *globals, io stdio, use string, aliases []string) *cobra.Command {
	var o imagesOpts
	c := &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   "List images",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runImages(c, g, io, o, args)
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "only show image IDs")
	f.BoolVar(&o.json, "json", false, "print a JSON array")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "do not truncate image IDs")
	return c
}

// imageRow is one image as `hull images --json` prints it.
type imageRow struct {
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	ID         string    `json:"id"`
	Created    time.Time `json:"created"`
	Size       int64     `json:"size"`
}

func runImages(c *cobra.Command, g *globals, io stdio, o imagesOpts, args []string) error {
	s, _, err := openImages(g, io, true)
	if err != nil {
		return err
	}
	list, err := s.List(c.Context())
	if err != nil {
		return err
	}
	var rows []imageRow
	for _, img := range list {
		names := img.Names
		if len(names) == 0 {
			names = []string{"<none>:<none>"}
		}
		for _, n := range names {
			i := strings.LastIndexByte(n, ':')
			r := imageRow{Repository: n[:i], Tag: n[i+1:], ID: string(img.ID), Created: img.Created, Size: img.Size}
			if len(args) == 1 && !matchRepo(args[0], r) {
				continue
			}
			rows = append(rows, r)
		}
	}
	switch {
	case o.json:
		if rows == nil {
			rows = []imageRow{}
		}
		e := json.NewEncoder(io.out)
		e.SetIndent("", "  ")
		return e.Encode(rows)
	case o.quiet:
		seen := map[string]bool{}
		for _, r := range rows {
			if !seen[r.ID] {
				seen[r.ID] = true
				fmt.Fprintln(io.out, shortID(r.ID, o.noTrunc))
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(io.out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, shortID(r.ID, o.noTrunc), ago(r.Created), sizeStr(r.Size))
	}
	return tw.Flush()
}

// matchRepo filters like `docker images REPOSITORY[:TAG]`.
func matchRepo(arg string, r imageRow) bool {
	repo, tag, hasTag := strings.Cut(arg, ":")
	if strings.LastIndexByte(arg, '/') > strings.LastIndexByte(arg, ':') {
		repo, hasTag = arg, false
	}
	return r.Repository == repo && (!hasTag || r.Tag == tag)
}

func shortID(id string, full bool) string {
	if full {
		return id
	}
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	case d < 2*365*24*time.Hour:
		return fmt.Sprintf("%d months ago", int(d.Hours()/24/30))
	}
	return fmt.Sprintf("%d years ago", int(d.Hours()/24/365))
}

func sizeStr(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "kB", "MB", "GB"} {
		if f < 1000 {
			if u == "B" {
				return fmt.Sprintf("%d%s", n, u)
			}
			return fmt.Sprintf("%.3g%s", f, u)
		}
		f /= 1000
	}
	return fmt.Sprintf("%.3gTB", f)
}
