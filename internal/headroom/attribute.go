package headroom

import (
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// Layer names a layer that can refuse a fork.
type Layer string

// The layers, and "none" when no limit is identified.
const (
	LayerUser   Layer = "user"
	LayerNode   Layer = "node"
	LayerCgroup Layer = "cgroup"
	LayerNone   Layer = "none"
)

// Origin is where a failure came from; any field may be unknown (0, -1 for
// UID, or ""). A PID that has exited since is common: the failing process
// often dies of the failure.
type Origin struct {
	PID    int
	UID    int
	Cgroup string
}

// Attribution says which limit refused (or is about to refuse) tasks for an
// origin, with the numbers that prove it.
type Attribution struct {
	// Layer is the binding layer.
	Layer Layer `json:"layer"`
	// Limit names the limit: pid_max, threads_max, pids.max or RLIMIT_NPROC.
	Limit string `json:"limit,omitempty"`
	// Used and Max are the binding limit's numbers.
	Used uint64 `json:"used"`
	Max  uint64 `json:"max"`
	// Cgroup is the binding cgroup, for the cgroup layer.
	Cgroup *Cgroup `json:"cgroup,omitempty"`
	// User is the user layer of the origin's process, when sampled.
	User *User `json:"user,omitempty"`
	// Node is the node layer at the time (in JSON it is the diagnosis's own "node").
	Node Node `json:"-"`
	// Reason is a one-line explanation with the numbers.
	Reason string `json:"reason"`
}

// NodeAtLimit reports whether the node layer is, for practical purposes, at
// its limit: at most max(16, 3 %) tasks left. Task counts churn faster than
// any sample (threads come and go in bursts), so a sample a few percent
// below the limit routinely misses the peak at which a fork was refused: the
// incident's node failed forks while samples showed about 97 %. A fork that
// fails while this holds is explained by the node.
func NodeAtLimit(n Node) bool {
	return n.Free() <= max(16, n.Limit*3/100)
}

// Attribute decides which limit binds for a failure from o, given the node
// layer n and the pids hierarchies hs: Gather reads the evidence from the
// host, and Judge decides from it alone.
//
// census returns a recent Walk of the same root: the tasks per UID and a
// process of each UID. It is called only when they are needed (a non-root
// UID with a finite RLIMIT_NPROC, or a gone process's UID); otherwise only
// the origin's own files and its cgroups are read, never every process, so
// that the cost does not grow with the node. A nil census, or one that
// returns nil, walks /proc when the count is needed.
func Attribute(root hostfs.Root, n Node, hs []Hierarchy, o Origin, census func() *Scan) Attribution {
	return Judge(Gather(root, n, hs, o, census), n)
}

// Evidence is what attributing a failure needs from the host, read at once
// by Gather; Judge decides from it without reading anything.
type Evidence struct {
	// User is the user layer of the origin's process (or, when it is gone,
	// of a live process of the same real UID), with its task count when its
	// RLIMIT_NPROC can bind; nil when unknown. UserPID is that process.
	User    *User
	UserPID int
	// Chain is the origin's pids cgroups, per hierarchy, from its own up
	// to the one below the root (deepest first).
	Chain []Cgroup
}

// Gather reads the evidence for a failure from o: the user layer of its
// process and its cgroup chain. It takes no lock and judges nothing.
func Gather(root hostfs.Root, n Node, hs []Hierarchy, o Origin, census func() *Scan) Evidence {
	var ev Evidence
	scan := func() *Scan {
		if census != nil {
			if s := census(); s != nil {
				return s
			}
		}
		s, _ := Walk(root, 0) // what was read before an error still counts
		return &s
	}
	pid := o.PID
	if o.UID > 0 && (pid <= 0 || !alive(root, pid)) {
		// The process is gone: judge RLIMIT_NPROC by a live process of the
		// same real UID (the limit is inherited, so usually the same).
		pid = processOfUID(root, scan(), o.UID)
	}
	if pid > 0 {
		if u, err := readUser(root, pid); err == nil {
			// A user cannot own more tasks than the node has: when the
			// whole host (the initial PID namespace) has fewer than the
			// soft limit, the user layer cannot bind and needs no count.
			if u.needsCount() && (n.Namespace != "initial" || n.Tasks >= u.Soft.Value) {
				u.count(scan())
			}
			ev.User, ev.UserPID = &u, pid
		}
	}
	ev.Chain = cgroupChain(root, hs, o)
	return ev
}

// Judge decides which limit binds from the evidence and the node layer n,
// in the order the kernel's copy_process() checks them, so that when
// several limits are exhausted the one that actually refused the fork is
// named: RLIMIT_NPROC of the caller, then kernel.threads-max, then the pids
// cgroups from the caller's up, then kernel.pid_max (alloc_pid). It reads
// nothing.
func Judge(ev Evidence, n Node) Attribution {
	a := Attribution{Layer: LayerNone, Node: n, User: ev.User}
	if u := ev.User; u != nil && u.AtLimit {
		a.Layer, a.Limit, a.Used, a.Max = LayerUser, "RLIMIT_NPROC", u.Tasks, u.Soft.Value
		a.Reason = reasonUser(u, ev.UserPID)
		return a
	}
	if n.Binding == BindingThreadsMax && NodeAtLimit(n) {
		a.Layer, a.Limit, a.Used, a.Max = LayerNode, string(BindingThreadsMax), n.Tasks, n.ThreadsMax
		a.Reason = n.UsageBinding()
		return a
	}
	if c := deepest(ev.Chain, func(c Cgroup) bool { return c.AtLimit }); c != nil {
		a.Layer, a.Limit, a.Used, a.Max, a.Cgroup = LayerCgroup, "pids.max", c.Current, c.Max.Value, c
		a.Reason = reasonCgroupAtLimit(c)
		return a
	}
	if NodeAtLimit(n) {
		a.Layer, a.Limit, a.Used, a.Max = LayerNode, string(n.Binding), n.Tasks, n.Limit
		a.Reason = n.UsageBinding()
		return a
	}
	if c := deepest(ev.Chain, func(c Cgroup) bool { return !c.Max.Unlimited && c.Refused > 0 }); c != nil {
		// Nothing is at its limit now, but the origin's cgroup (or one
		// above it) has refused forks: the failing process often dies of
		// the failure and takes its tasks with it.
		a.Layer, a.Limit, a.Used, a.Max, a.Cgroup = LayerCgroup, "pids.max", c.Current, c.Max.Value, c
		a.Reason = reasonCgroupRefused(c)
		return a
	}
	a.Reason = reasonUnexplained(n)
	return a
}

// deepest returns a copy of the first cgroup of chain (deepest first) for
// which ok holds.
func deepest(chain []Cgroup, ok func(Cgroup) bool) *Cgroup {
	for _, c := range chain {
		if ok(c) {
			return &c
		}
	}
	return nil
}

func alive(root hostfs.Root, pid int) bool {
	_, err := os.Stat(root.ProcPath(strconv.Itoa(pid)))
	return err == nil
}

// processOfUID returns the process of the real UID uid that scan saw, if
// it is still alive, or 0.
func processOfUID(root hostfs.Root, scan *Scan, uid int) int {
	if pid, ok := scan.PIDByUID[uid]; ok && alive(root, pid) {
		return pid
	}
	return 0
}

// cgroupChain reads the origin's pids cgroups in each hierarchy, from its
// own up to the one below the root, described (kind, pod, unit). A cgroup
// that cannot be read (gone since) is left out.
func cgroupChain(root hostfs.Root, hs []Hierarchy, o Origin) []Cgroup {
	var chain []Cgroup
	for _, h := range hs {
		p := o.Cgroup
		if p == "" && o.PID > 0 {
			if cp, err := CgroupOf(root, o.PID, h.Version); err == nil {
				p = cp
			}
		}
		if p == "" {
			continue
		}
		for p = path.Clean("/" + p); p != "/"; p = path.Dir(p) {
			if c, err := DescribeCgroup(root, h, p); err == nil {
				chain = append(chain, c)
			}
		}
	}
	return chain
}

// DescribeCgroup reads a cgroup and says what it is (kind, pod, unit).
func DescribeCgroup(root hostfs.Root, h Hierarchy, p string) (Cgroup, error) {
	c, err := ReadCgroup(h, p)
	if err != nil {
		return c, err
	}
	c.Kind = KindOf(c.Path)
	c.Pod = PodOfPath(root, c.Path)
	if c.Kind == KindUnit {
		c.Unit = path.Base(c.Path)
	}
	return c, nil
}

// KindOf guesses what a cgroup path is from its name.
func KindOf(p string) Kind {
	base := path.Base(p)
	switch {
	case strings.HasSuffix(base, ".service"):
		return KindUnit
	case base == "kubepods" || base == "kubepods.slice":
		return KindKubepods
	case isQoS(base):
		return KindQoS
	case podDir.MatchString(base):
		return KindPod
	case strings.Contains(p, "pod") && (strings.HasSuffix(base, ".scope") || len(base) == 64):
		return KindContainer
	}
	return KindNamed
}
