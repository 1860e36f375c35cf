package bundle

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits on the image's account files, which are hostile input.
const (
	maxAccountLine   = 4096
	maxAccountGroups = 1024
)

// LookupUser resolves a Docker user spec (uid, uid:gid, name, name:group, and mixes)
// against the image's /etc/passwd and /etc/group contents (either may be nil). Numeric
// ids need no files; a numeric uid that has a passwd entry takes its primary group,
// and the user's supplementary groups come from group. The empty spec is root.
func LookupUser(spec string, passwd, group []byte) (specs.User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		if hasGroup {
			return specs.User{}, fmt.Errorf("user %q: no user before the colon: use uid[:gid]", spec)
		}
		userPart = "0"
	}
	if hasGroup && groupPart == "" {
		return specs.User{}, fmt.Errorf("user %q: no group after the colon: use uid[:gid]", spec)
	}
	var u specs.User
	var name string
	if id, ok := parseID(userPart); ok {
		u.UID = id
		if e, found := findPasswd(passwd, func(e passwdEntry) bool { return e.uid == id }); found {
			u.GID, name = e.gid, e.name
		}
	} else {
		e, found := findPasswd(passwd, func(e passwdEntry) bool { return e.name == userPart })
		if !found {
			return specs.User{}, fmt.Errorf("user %q: no such user in the image's /etc/passwd: use a numeric uid[:gid]", userPart)
		}
		u.UID, u.GID, name = e.uid, e.gid, e.name
	}
	if hasGroup {
		if id, ok := parseID(groupPart); ok {
			u.GID = id
		} else {
			g, found := findGroup(group, func(g groupEntry) bool { return g.name == groupPart })
			if !found {
				return specs.User{}, fmt.Errorf("group %q: no such group in the image's /etc/group: use a numeric gid", groupPart)
			}
			u.GID = g.gid
		}
	}
	if name != "" {
		seen := map[uint32]bool{u.GID: true}
		eachGroup(group, func(g groupEntry) bool {
			for _, m := range g.members {
				if m == name && !seen[g.gid] && len(u.AdditionalGids) < maxAccountGroups {
					seen[g.gid] = true
					u.AdditionalGids = append(u.AdditionalGids, g.gid)
				}
			}
			return false
		})
	}
	return u, nil
}

// parseID parses a decimal uid or gid below 2^31, as the kernel accepts.
func parseID(s string) (uint32, bool) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// eachLine calls fn on each line of data shorter than maxAccountLine, skipping
// comments, until fn returns true.
func eachLine(data []byte, fn func(fields []string) bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 512), maxAccountLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if fn(strings.Split(line, ":")) {
			return
		}
	}
}

func findPasswd(data []byte, match func(passwdEntry) bool) (passwdEntry, bool) {
	var out passwdEntry
	var found bool
	eachLine(data, func(f []string) bool {
		if len(f) < 4 {
			return false
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 || f[0] == "" {
			return false
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if match(e) {
			out, found = e, true
			return true
		}
		return false
	})
	return out, found
}

func eachGroup(data []byte, fn func(groupEntry) bool) {
	eachLine(data, func(f []string) bool {
		if len(f) < 3 {
			return false
		}
		gid, ok := parseID(f[2])
		if !ok || f[0] == "" {
			return false
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		return fn(g)
	})
}

func findGroup(data []byte, match func(groupEntry) bool) (groupEntry, bool) {
	var out groupEntry
	var found bool
	eachGroup(data, func(g groupEntry) bool {
		if match(g) {
			out, found = g, true
			return true
		}
		return false
	})
	return out, found
}
