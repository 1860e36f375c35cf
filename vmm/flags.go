package vmm

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseMemory parses the --memory flag of `hull vm run` and hull-vmm: a size with a
// unit (b, k, m, g, with optional "i" and "b": 512M, 1GiB, 268435456b) or a bare number
// of MiB. It returns whole MiB.
func ParseMemory(s string) (int, error) {
	bad := func() (int, error) {
		return 0, fmt.Errorf("--memory %q: want a size such as 256M or 1G, or a number of MiB", s)
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := uint64(1 << 20) // a bare number is MiB
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult, t = 1<<10, t[:len(t)-1]
		case 'm':
			mult, t = 1<<20, t[:len(t)-1]
		case 'g':
			mult, t = 1<<30, t[:len(t)-1]
		default:
			if strings.HasSuffix(strings.ToLower(s), "b") {
				mult = 1 // plain bytes: "268435456b"
			}
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 || n > (1<<46)/mult {
		return bad()
	}
	bytes := n * mult
	if bytes%(1<<20) != 0 {
		return 0, fmt.Errorf("--memory %q: not a whole number of MiB", s)
	}
	return int(bytes >> 20), nil
}

// ParseDisk parses the --disk flag: PATH[,ro][,id=NAME].
func ParseDisk(s string) (Disk, error) {
	parts := strings.Split(s, ",")
	d := Disk{Path: parts[0]}
	if d.Path == "" {
		return d, fmt.Errorf("--disk %q: no path: want PATH[,ro][,id=NAME]", s)
	}
	for _, p := range parts[1:] {
		switch {
		case p == "ro" || p == "readonly":
			d.ReadOnly = true
		case p == "rw":
			d.ReadOnly = false
		case strings.HasPrefix(p, "id="):
			d.ID = strings.TrimPrefix(p, "id=")
		default:
			return d, fmt.Errorf("--disk %q: unknown option %q: want PATH[,ro][,id=NAME]", s, p)
		}
	}
	return d, nil
}

// DiskFlag is the --disk value that ParseDisk parses back into d.
func DiskFlag(d Disk) string {
	s := d.Path
	if d.ReadOnly {
		s += ",ro"
	}
	if d.ID != "" {
		s += ",id=" + d.ID
	}
	return s
}
