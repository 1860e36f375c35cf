package bundle

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// localhosts is /etc/hosts of a container with its own network namespace, as Docker
// writes it for --network none.
const localhosts = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

// EtcFiles are the files Docker gives every container over the image's, by the path
// the container sees: with its own network namespace, /etc/hosts with the localhost
// names and /etc/hostname with its host name; with the host's network, copies of the
// host's /etc/hosts and /etc/resolv.conf (read with hostFile; a file it cannot read is
// left out, and the image's stays).
func EtcFiles(network, hostname string, hostFile func(string) ([]byte, error)) map[string][]byte {
	files := map[string][]byte{}
	if network == NetworkHost {
		for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
			if b, err := hostFile(f); err == nil {
				files[f] = b
			}
		}
		return files
	}
	files["/etc/hosts"] = []byte(localhosts)
	if hostname != "" {
		files["/etc/hostname"] = []byte(hostname + "\n")
	}
	return files
}

// AddFiles writes files into the bundle folder dir (named by their base names) and
// bind-mounts each over its path in s, as Docker mounts its /etc files: the container
// may change them, and they go with the container. A path the spec already mounts
// something on (a -v of the user's) is left to that mount.
func AddFiles(dir string, s *specs.Spec, files map[string][]byte) error {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return path.Clean(m.Destination) == p }) {
			continue
		}
		src := filepath.Join(dir, path.Base(p))
		if err := os.WriteFile(src, files[p], 0o644); err != nil {
			return fmt.Errorf("container's %s: %w", p, err)
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: p, Type: "bind", Source: src, Options: []string{"rbind", "rprivate"}})
	}
	return nil
}
