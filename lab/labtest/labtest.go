// Package labtest holds what the nested-lab tests of several packages share: the cache
// they read, hull's binaries built for L1, and L1's console in the test log. Only
// tests import it.
package labtest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/internal/testenv"
	"github.com/hullvm/hull/lab"
)

// Cache is the cache folder scripts/setup filled: $HULL_CACHE, else the default.
func Cache() cache.Dir {
	if v := os.Getenv("HULL_CACHE"); v != "" {
		return cache.Dir(v)
	}
	return cache.Dir(cache.DefaultDir)
}

// Setup is the start of every lab test: it skips under -short (but not under CI), and
// returns the cache and the lab as scripts/setup left them, after requiring QEMU and
// L1's kernel (a skip locally, a failure under CI when missing).
func Setup(t testing.TB) (cache.Dir, lab.Config) {
	t.Helper()
	if testenv.Short() {
		t.Skip("nested lab: minutes of emulation (go test -short leaves it out)")
	}
	d := Cache()
	cfg := lab.Default(d)
	// No test's step is silent for long (each prints its begin and end, and an L2
	// boot prints within seconds): an L1 silent for 3 minutes has locked up.
	cfg.Silence = 3 * time.Minute
	testenv.RequireBinary(t, cfg.QEMU)
	testenv.RequireFile(t, cfg.Kernel, "the lab's L1 kernel")
	return d, cfg
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

// Run boots the lab with cfg and, when the run met the lab's own failure (an L2 guest
// that stalls or triple-faults under the emulation, as stalled says, or a whole L1
// that stopped: lab.ErrTimeout, lab.ErrLockup, lab.ErrSilent; about 1 L2 boot in 50,
// docs/lab.md), logs why and boots it again, at most maxBoots times in all. The last
// boot's result is the result: a test then fails on it like on any other.
func Run(ctx context.Context, t testing.TB, cfg lab.Config, stalled func(lab.Result) string) (lab.Result, error) {
	t.Helper()
	var res lab.Result
	var err error
	for attempt := 1; ; attempt++ {
		res, err = lab.Run(ctx, cfg)
		why := ""
		switch {
		case errors.Is(err, lab.ErrTimeout), errors.Is(err, lab.ErrLockup), errors.Is(err, lab.ErrSilent):
			why = err.Error()
		case err == nil:
			why = stalled(res)
		}
		if why == "" || attempt == maxBoots {
			return res, err
		}
		t.Logf("lab: %s; the emulation, not the test (docs/lab.md): booting the lab again (boot %d of at most %d)", why, attempt+1, maxBoots)
	}
}

// maxBoots is how many times Run boots the lab when it stalls. A stall now ends a
// boot within about 3 minutes (lab.ErrLockup, lab.ErrSilent), so a retry costs little,
// and CI runs have met stalls often: in 13 boots of TestLabVM's lab (about 30 L2
// guests each) in this session's CI runs, 6 stalled, two of them twice in a row; in
// 3 boots on an idle machine, none.
const maxBoots = 4

// Stalled reports the first step whose output shows an L2 guest that stalled (its
// start deadline passed) or triple-faulted, or "".
func Stalled(res lab.Result) string {
	for _, s := range res.Steps() {
		for _, sign := range []string{"guest triple-faulted", "did not start the process within"} {
			if strings.Contains(s.Output, sign) {
				return "step " + s.Name + ": " + sign
			}
		}
	}
	return ""
}
