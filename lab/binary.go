package lab

import (
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// AddBinary adds a dynamically linked host program to a payload at the L1 path l1,
// with the shared libraries and the dynamic loader it needs at the paths ldd names
// (L1 has no C library of its own). A static program is added alone.
func AddBinary(payload map[string]string, bin, l1 string) error {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	payload[l1] = bin
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil
		}
		return fmt.Errorf("lab: ldd %s: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
	for _, lib := range ParseLdd(string(out)) {
		payload[lib] = lib
	}
	return nil
}

// ParseLdd returns the absolute library paths in ldd's output: the "=> /path" targets
// and the loader, skipping the vDSO and libraries ldd could not find.
func ParseLdd(out string) []string {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs
}

// AddTree adds every regular file under the host folder dir to a payload, under the L1
// folder l1dir (relative to /payload), keeping the layout.
func AddTree(payload map[string]string, dir, l1dir string) error {
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		payload[path.Join(l1dir, filepath.ToSlash(rel))] = p
		return nil
	})
	if err != nil {
		return fmt.Errorf("lab: add %s: %w", dir, err)
	}
	return nil
}
