package bundle

import (
	"fmt"
	"strings"

	"github.com/docker/go-units"
)

// ParseBytes parses a Docker size such as 256m, 1g, 512k or 1048576 (bytes; units are
// powers of 1024, case-insensitive, with an optional trailing b or ib) as docker run's
// --memory does, with Docker's own parser (github.com/docker/go-units).
func ParseBytes(s string) (int64, error) {
	n, err := units.RAMInBytes(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q is not valid: use a number with an optional unit, such as 256m", s)
	}
	return n, nil
}

// ParseMount parses a Docker volume spec SRC:DST[:ro|:rw].
func ParseMount(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	var m Mount
	switch len(parts) {
	case 2:
	case 3:
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return Mount{}, fmt.Errorf("volume %q: mode %q is not ro or rw", s, parts[2])
		}
	default:
		return Mount{}, fmt.Errorf("volume %q: use SRC:DST[:ro]", s)
	}
	m.Source, m.Destination = parts[0], parts[1]
	if m.Source == "" || m.Destination == "" {
		return Mount{}, fmt.Errorf("volume %q: use SRC:DST[:ro]", s)
	}
	if !strings.HasPrefix(m.Destination, "/") {
		return Mount{}, fmt.Errorf("volume %q: the destination must be an absolute path", s)
	}
	return m, nil
}
