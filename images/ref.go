package images

import (
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
)

// refName is a parsed image reference in Docker's familiar form: the repository without
// "index.docker.io/" and "library/", a tag (default "latest") or a digest.
type refName struct {
	repo   string
	tag    string
	digest digest.Digest
}

// String is "repo:tag", the form names are stored in.
func (n refName) String() string { return n.repo + ":" + n.tag }

// familiar parses ref the way Docker does: "busybox" is "busybox:latest" on Docker Hub.
func familiar(ref string) (refName, error) {
	r, err := parseRemote(ref)
	if err != nil {
		return refName{}, err
	}
	n := refName{repo: familiarRepo(r.Context())}
	switch v := r.(type) {
	case name.Tag:
		n.tag = v.TagStr()
	case name.Digest:
		d, err := digest.Parse(v.DigestStr())
		if err != nil {
			return refName{}, fmt.Errorf("reference %q: %w", ref, err)
		}
		n.digest = d
	}
	return n, nil
}

// parseRemote parses ref for a registry. Loopback registries (localhost, 127.0.0.0/8,
// ::1) are reached over plain HTTP, as Docker does.
func parseRemote(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	if loopback(r.Context().RegistryStr()) {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
		}
	}
	return r, nil
}

func loopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func familiarRepo(r name.Repository) string {
	reg, repo := r.RegistryStr(), r.RepositoryStr()
	if reg == name.DefaultRegistry {
		return strings.TrimPrefix(repo, "library/")
	}
	return reg + "/" + repo
}

// splitName splits a stored "repo:tag" name.
func splitName(n string) (repo, tag string, ok bool) {
	i := strings.LastIndexByte(n, ':')
	if i < 0 || strings.Contains(n[i:], "/") {
		return n, "", false
	}
	return n[:i], n[i+1:], true
}

// normalizeName turns a user's name ("busybox", "busybox:1", "docker.io/library/x")
// into the stored form, refusing digests: a tag names a movable pointer.
func normalizeName(ref string) (string, error) {
	n, err := familiar(ref)
	if err != nil {
		return "", err
	}
	if n.digest != "" {
		return "", fmt.Errorf("image name %q: a digest cannot be a tag", ref)
	}
	return n.String(), nil
}
