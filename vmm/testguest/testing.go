package testguest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hullvm/hull/cache"
	"github.com/hullvm/hull/internal/testenv"
)

// Get returns the test guests for a test or benchmark, built from the embedded sources
// into the cache (HULL_CACHE, else /var/cache/hull) on first use, or into a temporary
// folder when the cache is not writable. A failed build fails the test: it is a bug or
// a broken toolchain, not a missing capability. Without gcc the test skips (fails in CI).
func Get(t testing.TB) Guest {
	t.Helper()
	testenv.RequireBinary(t, "gcc")
	testenv.RequireBinary(t, "objcopy")
	dir := os.Getenv("HULL_CACHE")
	if dir == "" {
		dir = cache.DefaultDir
	}
	if err := os.MkdirAll(filepath.Join(dir, "testguest"), 0o755); err != nil {
		dir = filepath.Join(os.TempDir(), "hull-testguest-cache")
	}
	g, err := Cached(context.Background(), dir)
	if err != nil {
		t.Fatalf("test guest: %v", err)
	}
	return g
}
