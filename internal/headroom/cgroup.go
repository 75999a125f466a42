package headroom

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// Hierarchy is a mounted cgroup hierarchy that has the pids controller.
type Hierarchy struct {
	// Version is 1 or 2.
	Version int `json:"version"`
	// Dir is the hierarchy's root directory under the sys root.
	Dir string `json:"dir"`
}

// Cgroup is one cgroup's PID headroom.
type Cgroup struct {
	// Path is the cgroup's path relative to its hierarchy's root, as in
	// /proc/PID/cgroup and journald's _SYSTEMD_CGROUP.
	Path string `json:"path"`
	// Kind says what the cgroup is: kubepods, qos, pod, container, unit, or named.
	Kind Kind `json:"kind"`
	// Version is the cgroup version of its hierarchy.
	Version int `json:"version"`
	// Current is pids.current: tasks in the cgroup and its descendants.
	Current uint64 `json:"current"`
	// Max is pids.max; null (unlimited) is "max".
	Max Limit `json:"max"`
	// Refused is the "max" count of refused forks the kernel keeps for the
	// cgroup (see ReadRejected for what it counts on which kernel).
	Refused uint64 `json:"rejected"`
	// Peak is pids.peak where the kernel has it.
	Peak *uint64 `json:"peak,omitempty"`
	// AtLimit is true when Current has reached a finite Max.
	AtLimit bool `json:"at_limit"`
	// UsedPercent is Current as a percentage of a finite Max.
	UsedPercent *float64 `json:"used_percent,omitempty"`
	// Estimated is true when the pids controller is not enabled for the
	// cgroup and Current was counted from its task list.
	Estimated bool `json:"estimated,omitempty"`
	// Pod is the pod the cgroup belongs to, when known.
	Pod *Pod `json:"pod,omitempty"`
	// Unit is the systemd unit, for a unit's cgroup.
	Unit string `json:"unit,omitempty"`
}

// Kind says what a cgroup is to the node.
type Kind string

// The cgroup kinds.
const (
	// KindKubepods is the cgroup above all pods (kubepods.slice, kubepods).
	KindKubepods Kind = "kubepods"
	// KindQoS is a QoS class's cgroup (burstable, besteffort).
	KindQoS Kind = "qos"
	// KindPod is a pod's cgroup.
	KindPod Kind = "pod"
	// KindContainer is a container's cgroup, below its pod's.
	KindContainer Kind = "container"
	// KindUnit is a systemd service's cgroup (its pids.max is TasksMax).
	KindUnit Kind = "unit"
	// KindNamed is any other cgroup, named by the user or a log line.
	KindNamed Kind = "named"
)

// Pod identifies a pod.
type Pod struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// String renders namespace/name, or the UID when the name is unknown.
func (p *Pod) String() string {
	if p == nil {
		return ""
	}
	if p.Name != "" {
		return p.Namespace + "/" + p.Name
	}
	return "pod " + p.UID
}

// Hierarchies returns the cgroup hierarchies with the pids controller:
// cgroup v2 at <sys>/fs/cgroup (unified) or <sys>/fs/cgroup/unified
// (hybrid), and v1 at <sys>/fs/cgroup/pids. It returns an error wrapping hostfs.ErrNotSupported when
// there is none.
func Hierarchies(root hostfs.Root) ([]Hierarchy, error) {
	var out []Hierarchy
	base := root.SysPath("fs", "cgroup")
	for _, dir := range []string{base, filepath.Join(base, "unified")} {
		b, err := hostfs.ReadSmall(filepath.Join(dir, "cgroup.controllers"))
		if err == nil && hasWord(b, "pids") {
			out = append(out, Hierarchy{Version: 2, Dir: dir})
		}
	}
	v1 := filepath.Join(base, "pids")
	if _, err := os.Stat(filepath.Join(v1, "cgroup.procs")); err == nil {
		out = append(out, Hierarchy{Version: 1, Dir: v1})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cgroup hierarchy with the pids controller under %s: %w", base, hostfs.ErrNotSupported)
	}
	return out, nil
}

func hasWord(b []byte, w string) bool {
	for _, f := range bytes.Fields(b) {
		if string(f) == w {
			return true
		}
	}
	return false
}

// ReadCgroup samples the cgroup at path (relative to the hierarchy root).
// A cgroup without pids files (controller not enabled for it) is counted
// from its task list and marked Estimated.
func ReadCgroup(h Hierarchy, p string) (Cgroup, error) {
	dir := filepath.Join(h.Dir, filepath.FromSlash(path.Clean("/"+p)))
	c := Cgroup{Path: path.Clean("/" + p), Version: h.Version, Max: Unlimited()}
	cur, err := hostfs.ReadUint(filepath.Join(dir, "pids.current"))
	switch {
	case err == nil:
		c.Current = cur
	case errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Stat(dir); serr != nil {
			return Cgroup{}, fmt.Errorf("cgroup %s: %w", c.Path, serr)
		}
		n, cerr := countTasks(dir, h.Version)
		if cerr != nil {
			return Cgroup{}, fmt.Errorf("cgroup %s has no pids.current and its tasks cannot be counted: %w", c.Path, cerr)
		}
		c.Current, c.Estimated = n, true
		return c, nil
	default:
		return Cgroup{}, err
	}
	b, err := hostfs.ReadSmall(filepath.Join(dir, "pids.max"))
	if err != nil {
		return Cgroup{}, err
	}
	if c.Max, err = parseLimit(b); err != nil {
		return Cgroup{}, fmt.Errorf("%s: %w", filepath.Join(dir, "pids.max"), err)
	}
	events, _ := eventsFile(h, dir)
	if b, err := hostfs.ReadSmall(events); err == nil {
		if c.Refused, err = parseEvents(b); err != nil {
			return Cgroup{}, fmt.Errorf("%s: %w", events, err)
		}
	}
	if peak, err := hostfs.ReadUint(filepath.Join(dir, "pids.peak")); err == nil {
		c.Peak = &peak
	}
	c.derive()
	return c, nil
}

func (c *Cgroup) derive() {
	if p, ok := Percent(c.Current, c.Max); ok {
		c.UsedPercent = &p
	}
	c.AtLimit = !c.Max.Unlimited && c.Current >= c.Max.Value
}

// ReadRejected returns a cgroup's count of refused forks: one small read,
// for watchers. What the kernel counts where (kernel/cgroup/pids.c, checked
// on Linux 6.12):
//
//   - cgroup v2 with pids.events.local (Linux 6.12 on): its "max" counts
//     the forks refused by this cgroup's own pids.max, and only here; that
//     is what is read. pids.events "max" counts them in that cgroup and
//     again in every ancestor (so kubepods.slice would count every pod's
//     refusals), unless the hierarchy is mounted with pids_localevents.
//   - cgroup v1, and v2 before pids.events.local: pids.events "max" counts
//     in the cgroup of the task that forked, whichever cgroup's limit was
//     hit: a container's counter rises when its pod's limit refuses. See
//     RefusingCgroup.
func ReadRejected(h Hierarchy, p string) (uint64, error) {
	file, _ := eventsFile(h, filepath.Join(h.Dir, filepath.FromSlash(path.Clean("/"+p))))
	b, err := hostfs.ReadSmall(file)
	if err != nil {
		return 0, err
	}
	// A read without the counter is not a reset to zero: report it, and let
	// the caller keep its last value.
	if !bytes.HasPrefix(b, []byte("max ")) && !bytes.Contains(b, []byte("\nmax ")) {
		return 0, fmt.Errorf("%s: no max counter in %q", file, clip(string(b)))
	}
	return parseEvents(b)
}

// eventsFile is the file with the cgroup's own refusals, and whether the
// kernel counts them at the limit that refused (true) or at the forking
// task's cgroup (false).
func eventsFile(h Hierarchy, dir string) (string, bool) {
	if h.Version == 2 {
		local := filepath.Join(dir, "pids.events.local")
		if _, err := os.Stat(local); err == nil {
			return local, true
		}
	}
	return filepath.Join(dir, "pids.events"), false
}

// RefusingCgroup describes the cgroup whose pids.max refused the forks
// counted at c (as DescribeCgroup gave it). Where the kernel counts at the
// limit (pids.events.local), that is c. Where it counts at the forking
// task's cgroup (v1, older v2), it is c or an ancestor: the nearest at its
// limit, else the nearest with a finite limit when c has none, else c.
// Refused is c's count either way.
func RefusingCgroup(root hostfs.Root, h Hierarchy, c Cgroup) Cgroup {
	p := path.Clean("/" + c.Path)
	if _, atLimit := eventsFile(h, filepath.Join(h.Dir, filepath.FromSlash(p))); atLimit || c.AtLimit {
		return c
	}
	var nearest *Cgroup
	for q := path.Dir(p); q != "/"; q = path.Dir(q) {
		a, err := DescribeCgroup(root, h, q)
		if err != nil {
			break
		}
		a.Refused = c.Refused
		if a.AtLimit {
			return a
		}
		if nearest == nil && !a.Max.Unlimited {
			nearest = &a
		}
	}
	if nearest != nil && c.Max.Unlimited {
		return *nearest
	}
	return c
}

// parseEvents returns the "max" counter of pids.events.
//
// Format: "max 12\n" (v1 and v2; Linux 6.13+ adds "max.imposed N" in v2,
// which is skipped). Unknown keys are skipped.
func parseEvents(b []byte) (uint64, error) {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte{' '})
		if !ok || string(k) != "max" {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("events max %q: %w", v, err)
		}
		return n, nil
	}
	return 0, nil
}

// countTasks counts the threads of a cgroup without the pids controller:
// v1's "tasks" lists thread IDs; v2's cgroup.threads (threaded cgroups) or,
// failing that, cgroup.procs (processes only: an undercount).
func countTasks(dir string, version int) (uint64, error) {
	names := []string{"tasks"}
	if version == 2 {
		names = []string{"cgroup.threads", "cgroup.procs"}
	}
	var lastErr error
	for _, n := range names {
		b, err := hostfs.ReadSmall(filepath.Join(dir, n))
		if err != nil {
			lastErr = err
			continue
		}
		return uint64(len(bytes.Fields(b))), nil
	}
	return 0, lastErr
}

// CgroupOf returns the path of pid's cgroup in a hierarchy of the given
// version, from /proc/PID/cgroup.
//
// Format: "hierarchy-ID:controller-list:path" per line, "0::/path" for v2
// (cgroups(7)).
func CgroupOf(root hostfs.Root, pid int, version int) (string, error) {
	b, err := hostfs.ReadSmall(root.ProcPath(strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", err
	}
	return parseProcCgroup(b, version)
}

func parseProcCgroup(b []byte, version int) (string, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if version == 2 && parts[0] == "0" && parts[1] == "" {
			return parts[2], nil
		}
		if version == 1 {
			for c := range strings.SplitSeq(parts[1], ",") {
				if c == "pids" {
					return parts[2], nil
				}
			}
		}
	}
	return "", fmt.Errorf("no cgroup v%d pids entry: %w", version, hostfs.ErrNotSupported)
}

// CgroupPIDs returns the processes of the cgroup at path and of its
// descendants, at most limit of them, from each cgroup's cgroup.procs
// (Documentation/admin-guide/cgroup-v2.rst; v1 has the same file). A
// descendant that vanishes while it is read is skipped.
//
// Format: one PID per line.
func CgroupPIDs(h Hierarchy, p string, limit int) ([]int, error) {
	top := filepath.Join(h.Dir, filepath.FromSlash(path.Clean("/"+p)))
	if _, err := os.Stat(top); err != nil {
		return nil, err
	}
	var out []int
	for dirs := []string{top}; len(dirs) > 0 && len(out) < limit; {
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		b, err := hostfs.ReadSmall(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue // vanished while read
		}
		for _, f := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(f)); err == nil && len(out) < limit {
				out = append(out, pid)
			}
		}
		subs, _ := subdirs(dir) // a vanished cgroup has no children left
		for _, s := range subs {
			dirs = append(dirs, filepath.Join(dir, s))
		}
	}
	return out, nil
}
