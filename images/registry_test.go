package images

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"

	"github.com/hullvm/hull/internal/testenv"
)

// TestRegistryRoundTrip pushes images to a real registry and pulls them into another
// store: the manifest digest, the image ID and the layer disks must come back the same.
func TestRegistryRoundTrip(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "mkfs.erofs")
	addr := testenv.Registry(t)
	rootfs := tarOf(t, ent{name: "bin/", typ: tar.TypeDir}, ent{name: "bin/hello", body: "#!/bin/sh\necho hi\n", mode: 0o755})
	var zs bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(rootfs)
	zw.Close()
	tests := []struct {
		name  string
		layer []byte
	}{
		{"plain", rootfs},
		{"gzip", gzipOf(t, rootfs)},
		{"zstd", zs.Bytes()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := addr + "/hull/test:" + tc.name
			src := openStore(t)
			img, err := src.Import(bg(), writeFile(t, filepath.Join(t.TempDir(), "rootfs"), tc.layer), ImportOptions{Name: ref})
			if err != nil {
				t.Fatal(err)
			}
			pushed, err := src.Push(bg(), ref)
			if err != nil {
				t.Fatal(err)
			}
			dst := openStore(t)
			got, err := dst.Pull(bg(), ref)
			if err != nil {
				t.Fatal(err)
			}
			if pushed != img.Manifest || got.Manifest != pushed || got.ID != img.ID {
				t.Errorf("manifest stored %s, pushed %s, pulled %s; ID stored %s, pulled %s", img.Manifest, pushed, got.Manifest, img.ID, got.ID)
			}
			if got.Layers[0].MediaType != img.Layers[0].MediaType {
				t.Errorf("pulled layer media type %s, pushed %s", got.Layers[0].MediaType, img.Layers[0].MediaType)
			}
			want, _ := src.Disks(bg(), img)
			disks, err := dst.Disks(bg(), got)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(disks[0]) != filepath.Base(want[0]) {
				t.Errorf("pulled disk %s, want %s", disks[0], want[0])
			}
			byName, err := dst.Get(bg(), ref)
			if err != nil || byName.ID != img.ID {
				t.Errorf("Get(%s) = %v, %v", ref, byName, err)
			}
		})
	}
}

// TestPullMissing checks the message for an image the registry does not have.
func TestPullMissing(t *testing.T) {
	addr := testenv.Registry(t)
	s := openStore(t)
	if _, err := s.Pull(bg(), addr+"/nothing/here:latest"); err == nil {
		t.Fatal("pull of a missing image succeeded")
	}
	if ents, _ := os.ReadDir(filepath.Join(s.dir, "tmp")); len(ents) != 0 {
		t.Errorf("work files left: %v", ents)
	}
}

// TestPullPicksAMD64 pushes a two-platform index and checks that pull takes the
// linux/amd64 image.
func TestPullPicksAMD64(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "mkfs.erofs")
	addr := testenv.Registry(t)
	arm, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	amd, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref, err := name.ParseReference(addr+"/multi/arch:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	img, err := s.Pull(bg(), ref.String())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := amd.ConfigName()
	wantM, _ := amd.Digest()
	if string(img.ID) != want.String() || string(img.Manifest) != wantM.String() || len(img.Layers) != 2 {
		t.Errorf("pulled %s (manifest %s, %d layers), want the amd64 image %s (manifest %s)", img.ID, img.Manifest, len(img.Layers), want, wantM)
	}
}

// TestRegistryCredentials puts a registry behind basic authentication and checks that
// push and pull take the credentials from the Docker config file ($DOCKER_CONFIG).
func TestRegistryCredentials(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "mkfs.erofs")
	target, err := url.Parse("http://" + testenv.Registry(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "hull" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="hull test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ref := addr + "/private/img:1"

	src := openStore(t)
	if _, err := src.Import(bg(), writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarOf(t, ent{name: "secret", body: "x"})), ImportOptions{Name: ref}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, auth string
		ok         bool
	}{
		{"no-credentials", "", false},
		{"wrong-password", "hull:nope", false},
		{"right-credentials", "hull:s3cret", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("HOME", home) // no ~/.docker/config.json to shadow DOCKER_CONFIG
			t.Setenv("DOCKER_CONFIG", home)
			cfg := `{"auths":{}}`
			if tc.auth != "" {
				cfg = fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, addr, base64.StdEncoding.EncodeToString([]byte(tc.auth)))
			}
			writeFile(t, filepath.Join(home, "config.json"), []byte(cfg))
			_, perr := src.Push(bg(), ref)
			dst := openStore(t)
			_, gerr := dst.Pull(bg(), ref)
			if tc.ok && (perr != nil || gerr != nil) {
				t.Fatalf("push: %v; pull: %v", perr, gerr)
			}
			if !tc.ok && (perr == nil || gerr == nil || !strings.Contains(perr.Error(), "401") && !strings.Contains(perr.Error(), "UNAUTHORIZED")) {
				t.Fatalf("push: %v; pull: %v; want both refused as unauthorized", perr, gerr)
			}
		})
	}
}
