// Package labtest holds what the nested-lab tests of several packages share: the cache
// they read, hull's binaries built for L1, and L1's console in the test log. Only
// tests import it.
package labtest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hullvm/hull/cache"
)

// Cache is the cache folder scripts/setup filled: $HULL_CACHE, else the default.
func Cache() cache.Dir {
	if v := os.Getenv("HULL_CACHE"); v != "" {
		return cache.Dir(v)
	}
	return cache.Dir(cache.DefaultDir)
}

// Build builds the hull command pkg (such as "cmd/hull") statically into dir, as L1,
// which has no C library, needs it, and returns the binary's path.
func Build(t testing.TB, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	b := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/hullvm/hull/"+pkg)
	b.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := b.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// Log is L1's console written to the test log, one line per write.
func Log(t testing.TB) io.Writer { return logWriter{t} }

type logWriter struct{ t testing.TB }

func (l logWriter) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Median is the median of vs (the mean of the middle two for an even count), 0 for none.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
