package bundle

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseBytes parses a Docker size such as 256m, 1g, 512k or 1048576 (bytes; suffixes
// b, k, m, g, t are powers of 1024, case-insensitive, with an optional trailing b).
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("size %q is empty: use a number with an optional unit, such as 256m", s)
	}
	mult := int64(1)
	if len(t) > 1 && t[len(t)-1] == 'b' && strings.ContainsAny(t[len(t)-2:len(t)-1], "kmgt") {
		t = t[:len(t)-1]
	}
	switch t[len(t)-1] {
	case 'b':
		t = t[:len(t)-1]
	case 'k':
		mult, t = 1<<10, t[:len(t)-1]
	case 'm':
		mult, t = 1<<20, t[:len(t)-1]
	case 'g':
		mult, t = 1<<30, t[:len(t)-1]
	case 't':
		mult, t = 1<<40, t[:len(t)-1]
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("size %q is not valid: use a number with an optional unit, such as 256m", s)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v), nil
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
