package headroom

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// User is the user layer for one process: its RLIMIT_NPROC against the tasks
// of its real UID.
type User struct {
	PID  int    `json:"pid"`
	UID  int    `json:"uid"`
	Comm string `json:"comm,omitempty"`
	// Soft and Hard are RLIMIT_NPROC ("Max processes"); null is unlimited.
	Soft Limit `json:"soft"`
	Hard Limit `json:"hard"`
	// Tasks is the number of tasks owned by UID across the node (all PID
	// namespaces: the limit is per user, not per container).
	Tasks uint64 `json:"tasks"`
	// AtLimit is true when Tasks has reached a finite soft limit and the
	// user is not root (root with CAP_SYS_RESOURCE or CAP_SYS_ADMIN is exempt).
	AtLimit bool `json:"at_limit"`
	// Exempt is true for UID 0.
	Exempt bool `json:"exempt,omitempty"`
}

// parseLimits returns the "Max processes" soft and hard limits of
// /proc/PID/limits.
//
// Format (proc(5)):
//
//	Limit                     Soft Limit           Hard Limit           Units
//	Max processes             249047               249047               processes
func parseLimits(b []byte) (soft, hard Limit, err error) {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(line, []byte("Max processes"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 2 {
			return Limit{}, Limit{}, fmt.Errorf("max processes line %q", line)
		}
		if soft, err = parseRlimit(f[0]); err != nil {
			return Limit{}, Limit{}, err
		}
		if hard, err = parseRlimit(f[1]); err != nil {
			return Limit{}, Limit{}, err
		}
		return soft, hard, nil
	}
	return Limit{}, Limit{}, fmt.Errorf("no Max processes line")
}

func parseRlimit(b []byte) (Limit, error) {
	if string(b) == "unlimited" {
		return Unlimited(), nil
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return Limit{}, fmt.Errorf("rlimit %q: %w", b, err)
	}
	return Finite(n), nil
}

// UserOf samples the user layer of pid, counting tasks per UID from scan
// (a Walk of the same root; pass nil to walk now). UID 0 is exempt and
// needs no count: it never walks for it, and its Tasks come from scan alone.
func UserOf(root hostfs.Root, pid int, scan *Scan) (User, error) {
	u, err := readUser(root, pid)
	if err != nil {
		return u, err
	}
	if scan == nil && u.Exempt {
		return u, nil
	}
	if scan == nil {
		s, err := Walk(root, 0)
		if err != nil && s.Processes == 0 {
			return u, err
		}
		scan = &s
	}
	u.count(scan)
	return u, nil
}

// readUser reads pid's real UID, name and RLIMIT_NPROC: two small files.
func readUser(root hostfs.Root, pid int) (User, error) {
	u := User{PID: pid}
	b, err := hostfs.ReadSmall(root.ProcPath(strconv.Itoa(pid), "status"))
	if err != nil {
		return u, err
	}
	st, err := parseStatus(b)
	if err != nil {
		return u, fmt.Errorf("pid %d: %w", pid, err)
	}
	u.UID, u.Comm = st.uid, st.name
	lb, err := hostfs.ReadSmall(root.ProcPath(strconv.Itoa(pid), "limits"))
	if err != nil {
		return u, err
	}
	if u.Soft, u.Hard, err = parseLimits(lb); err != nil {
		return u, fmt.Errorf("pid %d limits: %w", pid, err)
	}
	u.Exempt = u.UID == 0
	return u, nil
}

// needsCount reports whether the user layer can bind at all: a non-root
// UID with a finite soft limit. Only then do its tasks need counting.
func (u *User) needsCount() bool { return !u.Exempt && !u.Soft.Unlimited }

// count sets Tasks and AtLimit from scan.
func (u *User) count(scan *Scan) {
	u.Tasks = scan.TasksByUID[u.UID]
	u.AtLimit = u.needsCount() && u.Tasks >= u.Soft.Value
}
