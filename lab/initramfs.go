package lab

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// payloadDir is L1's working directory for the script; relative guest paths land here.
const payloadDir = "/payload"

// guestPath turns a Payload key into a clean absolute L1 path, or says why it cannot be
// one. Relative paths are taken under /payload. The paths L1 itself needs (/init,
// /bin/busybox, /hull, /lib/modules) and the pseudo file systems are refused.
func guestPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty guest path")
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return "", fmt.Errorf("guest path %q has a .. element", p)
		}
	}
	if !path.IsAbs(p) {
		p = path.Join(payloadDir, p)
	}
	p = path.Clean(p)
	if p == "/" || p == "/init" || p == payloadDir {
		return "", fmt.Errorf("guest path %q is reserved", p)
	}
	for _, r := range []string{"/proc", "/sys", "/dev", "/hull", "/lib/modules", "/bin"} {
		if p == r || strings.HasPrefix(p, r+"/") {
			return "", fmt.Errorf("guest path %q is under %s, which L1 reserves", p, r)
		}
	}
	return p, nil
}

// payloadFile is one file to copy into L1.
type payloadFile struct {
	guest, host string
}

// payloadFiles lists the payload sorted by guest path, validated.
func payloadFiles(payload map[string]string) ([]payloadFile, error) {
	files := make([]payloadFile, 0, len(payload))
	seen := make(map[string]string, len(payload))
	for g, h := range payload {
		p, err := guestPath(g)
		if err != nil {
			return nil, fmt.Errorf("lab: payload %s: %w", g, err)
		}
		if other, dup := seen[p]; dup {
			return nil, fmt.Errorf("lab: payload %q and %q both land at %s", g, other, p)
		}
		seen[p] = g
		files = append(files, payloadFile{guest: p, host: h})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].guest < files[j].guest })
	return files, nil
}

// writeInitramfs writes L1's initramfs: an uncompressed cpio of the payload (no time is
// spent compressing disk images), then a gzip-compressed cpio of what L1 itself runs
// (busybox, the modules, /init and the script). The kernel unpacks concatenated
// archives in order, so L1's own files win over a payload file of the same name.
func writeInitramfs(w io.Writer, cfg Config, f frame) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	files, err := payloadFiles(cfg.Payload)
	if err != nil {
		return err
	}
	if len(files) > 0 {
		if err := writePayload(bw, files); err != nil {
			return err
		}
	}
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := writeBase(zw, cfg, f); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("lab: compress initramfs: %w", err)
	}
	return bw.Flush()
}

// writePayload writes the payload files and their parent directories as one archive.
func writePayload(w io.Writer, files []payloadFile) error {
	c := newCPIOWriter(w)
	dirs := map[string]bool{"/": true}
	for _, pf := range files {
		var parents []string
		for d := path.Dir(pf.guest); !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := c.Dir(parents[i], 0o755); err != nil {
				return fmt.Errorf("lab: payload: %w", err)
			}
		}
		if err := copyFile(c, pf); err != nil {
			return err
		}
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("lab: payload: %w", err)
	}
	return nil
}

func copyFile(c *cpioWriter, pf payloadFile) error {
	src, err := os.Open(pf.host)
	if err != nil {
		return fmt.Errorf("lab: copy %s to L1 %s: %w", pf.host, pf.guest, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("lab: copy %s to L1 %s: %w", pf.host, pf.guest, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("lab: copy %s to L1 %s: not a regular file", pf.host, pf.guest)
	}
	if err := c.File(pf.guest, uint32(st.Mode().Perm()), st.Size(), src); err != nil {
		return fmt.Errorf("lab: copy %s to L1 %s: %w", pf.host, pf.guest, err)
	}
	return nil
}

// writeBase writes what L1 runs: directories, /dev/console, busybox, the modules, /init,
// /hull/script and /hull/lib.sh.
func writeBase(w io.Writer, cfg Config, f frame) error {
	c := newCPIOWriter(w)
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "lib", "lib/modules",
		"proc", "sys", "dev", "tmp", "root", "etc", "hull", "payload"} {
		perm := uint32(0o755)
		if d == "tmp" {
			perm = 0o1777
		}
		if err := c.Dir(d, perm); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for init before devtmpfs is mounted.
	if err := c.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	host := []payloadFile{{guest: "bin/busybox", host: cfg.Busybox}}
	for _, m := range moduleNames() {
		host = append(host, payloadFile{guest: "lib/modules/" + m + ".ko", host: filepath.Join(cfg.Modules, m+".ko")})
	}
	for _, pf := range host {
		if err := copyFile(c, pf); err != nil {
			return err
		}
	}
	if err := c.Bytes("init", 0o755, []byte(f.initScript())); err != nil {
		return err
	}
	if err := c.Bytes("hull/lib.sh", 0o644, []byte(f.libScript())); err != nil {
		return err
	}
	if err := c.Bytes("hull/script", 0o644, []byte(cfg.Script)); err != nil {
		return err
	}
	return c.Close()
}
