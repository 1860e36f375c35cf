package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mem is the memory a set of processes holds, in KiB.
type Mem struct{ RSS, PSS int64 }

// ParseSmapsRollup reads /proc/PID/smaps_rollup's Rss and Pss lines.
func ParseSmapsRollup(r io.Reader) (Mem, error) {
	var m Mem
	var seen int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[2] != "kB" {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("smaps_rollup: %q: %w", sc.Text(), err)
		}
		switch f[0] {
		case "Rss:":
			m.RSS, seen = v, seen|1
		case "Pss:":
			m.PSS, seen = v, seen|2
		}
	}
	if err := sc.Err(); err != nil {
		return Mem{}, err
	}
	if seen != 3 {
		return Mem{}, fmt.Errorf("smaps_rollup: no Rss and Pss lines")
	}
	return m, nil
}

// TreeMem sums the memory of pid and all its descendants.
func TreeMem(proc string, pid int) (Mem, error) {
	var total Mem
	for _, p := range append([]int{pid}, descendants(proc, pid)...) {
		f, err := os.Open(filepath.Join(proc, strconv.Itoa(p), "smaps_rollup"))
		if err != nil {
			if p == pid {
				return Mem{}, fmt.Errorf("memory of pid %d: %w", pid, err)
			}
			continue // exited meanwhile
		}
		m, err := ParseSmapsRollup(f)
		f.Close()
		if err != nil {
			return Mem{}, fmt.Errorf("memory of pid %d: %w", p, err)
		}
		total.RSS += m.RSS
		total.PSS += m.PSS
	}
	return total, nil
}

// descendants lists the children of pid, recursively, from /proc/*/stat parent fields.
func descendants(proc string, pid int) []int {
	ents, _ := os.ReadDir(proc)
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue
		}
		if pp, ok := ParseStatPPID(string(b)); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// ParseStatPPID returns the parent pid from a /proc/PID/stat line. The command name
// in parentheses may itself hold spaces and parentheses, so it splits after the last ')'.
func ParseStatPPID(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}
