package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Tag gives the image src names the name dst, taking dst from any image that had it.
func (s *Store) Tag(ctx context.Context, src, dst string) error {
	n, err := normalizeName(dst)
	if err != nil {
		return fmt.Errorf("tag %s: %w", dst, err)
	}
	unlock, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	ix, err := s.readIndex()
	if err != nil {
		return err
	}
	r, err := find(ix, src)
	if err != nil {
		return fmt.Errorf("tag %s: %w", src, err)
	}
	id := r.ID
	moveNames(ix, []string{n})
	for i := range ix.Images {
		if ix.Images[i].ID == id {
			ix.Images[i].Names = append(ix.Images[i].Names, n)
		}
	}
	return s.writeIndexLocked(ix)
}

// Removal reports what Remove did, in Docker's words.
type Removal struct {
	Untagged []string
	Deleted  []digest.Digest
}

// Remove untags ref when it is a name, and deletes the image once no name is left (or
// at once when ref is an ID: force is needed if the image still has several names).
// Blobs and layer disks no other image uses are then collected.
func (s *Store) Remove(ctx context.Context, ref string, force bool) (*Removal, error) {
	rm, err := s.remove(ctx, ref, force)
	if err != nil {
		return nil, fmt.Errorf("remove %s: %w", ref, err)
	}
	if len(rm.Deleted) > 0 {
		if _, err := s.Prune(ctx); err != nil {
			return rm, err
		}
	}
	return rm, nil
}

func (s *Store) remove(ctx context.Context, ref string, force bool) (*Removal, error) {
	unlock, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	r, err := find(ix, ref)
	if err != nil {
		return nil, err
	}
	rm := &Removal{}
	byName := ""
	if n, err := normalizeName(ref); err == nil && slices.Contains(r.Names, n) {
		byName = n
	}
	switch {
	case byName != "" && len(r.Names) > 1:
		r.Names = slices.DeleteFunc(r.Names, func(x string) bool { return x == byName })
		rm.Untagged = []string{byName}
	case byName == "" && len(r.Names) > 1 && !force:
		return nil, fmt.Errorf("image %s has several names (%s): remove them one by one, or use --force", short(r.ID), strings.Join(r.Names, ", "))
	default:
		rm.Untagged = append(rm.Untagged, r.Names...)
		rm.Deleted = []digest.Digest{r.ID}
		id := r.ID
		ix.Images = slices.DeleteFunc(ix.Images, func(x record) bool { return x.ID == id })
	}
	if err := s.writeIndexLocked(ix); err != nil {
		return nil, err
	}
	return rm, nil
}

// PruneReport says what the garbage collector removed.
type PruneReport struct {
	Blobs, Disks, Temps int
	Bytes               int64
}

// Prune removes blobs and layer disks no image references and work folders no live
// process holds. Dangling images (without names) are kept; remove them by ID.
func (s *Store) Prune(ctx context.Context) (*PruneReport, error) {
	unlock, err := s.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	blobs := map[string]bool{}
	diffs := map[string]bool{}
	for _, r := range ix.Images {
		blobs[r.ID.Encoded()] = true
		blobs[r.Manifest.Encoded()] = true
		for _, l := range r.Layers {
			blobs[l.Digest.Encoded()] = true
			diffs[l.DiffID.Encoded()] = true
		}
	}
	rep := &PruneReport{}
	bdir := filepath.Join(s.dir, "blobs", "sha256")
	if err := s.sweep(bdir, rep, func(n string) bool { return blobs[n] }, &rep.Blobs); err != nil {
		return rep, err
	}
	err = s.sweep(s.layers, rep, func(n string) bool {
		hex, ok := strings.CutSuffix(n, ".erofs")
		if !ok {
			hex, ok = strings.CutSuffix(n, ".lock")
			if ok && !diffs[hex] {
				return !lockFree(filepath.Join(s.layers, n))
			}
		}
		return diffs[hex]
	}, &rep.Disks)
	if err != nil {
		return rep, err
	}
	n, err := sweepLocked(filepath.Join(s.dir, "tmp"), "op-")
	rep.Temps += n
	if err != nil {
		return rep, err
	}
	if s.scratch != "" { // trees of killed conversions on the scratch tmpfs
		n, err := sweepLocked(s.scratch, "hull-tree-")
		rep.Temps += n
		if err != nil {
			return rep, err
		}
	}
	// Interrupted atomic writes leave .tmp-* files beside their target.
	for _, d := range []string{s.dir, bdir} {
		ents, err := os.ReadDir(d)
		if err != nil {
			return rep, err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				os.Remove(filepath.Join(d, e.Name()))
				rep.Temps++
			}
		}
	}
	return rep, nil
}

// sweep removes the files in dir that keep does not want.
func (s *Store) sweep(dir string, rep *PruneReport, keep func(string) bool, count *int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if keep(e.Name()) || strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if fi, err := e.Info(); err == nil {
			rep.Bytes += fi.Size()
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("prune %s: %w", p, err)
		}
		*count++
		s.log.Debug("pruned", "path", p)
	}
	return nil
}

// lockFree reports whether no process holds the flock on path (or it does not exist).
func lockFree(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}
