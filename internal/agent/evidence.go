package agent

import (
	"fmt"
	"path"
	"time"

	"github.com/pidpressure/pidpressure/internal/forkfail"
	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/pidsevents"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// attrKey is what an attribution depends on besides the host's state.
type attrKey struct {
	origin headroom.Origin
	node   headroom.Node
}

// attrAt is an attribution and when it was made.
type attrAt struct {
	a  headroom.Attribution
	at time.Time
}

// maxAttrs bounds the attributions kept for reuse.
const maxAttrs = 1024

// minCensusAge is the least time between two walks of /proc for failure
// reports: whatever the line rate, the per-line cost does not grow with
// the number of processes on the node.
const minCensusAge = 5 * time.Second

// minCensusGap is the least time between two walks of /proc when the node
// has moved since the last.
const minCensusGap = 500 * time.Millisecond

// censusParents bounds the zombie parents a census keeps (their trend is
// followed from one census to the next).
const censusParents = 64

// peakAround is the node sample a failure written at t (now when zero) is
// judged against: the fullest of those around t and of the last moments
// (Correlator.PeakAround and Peak say why). A line read late is judged as
// the lines around it were; one read at once, by the last moments, in which
// the process that failed often released what it held.
func (d *Detector) peakAround(t time.Time) headroom.Node {
	now := d.clock.Now()
	if t.IsZero() || t.After(now) {
		t = now
	}
	span := 2 * d.cfg.SampleInterval
	d.mu.Lock()
	defer d.mu.Unlock()
	around, okAround := d.corr.PeakAround(t, span)
	recent, okRecent := d.corr.Peak(span)
	if !okAround || (okRecent && recent.Free() <= around.Free()) {
		return recent
	}
	return around
}

// lineFailure attributes a matched line.
func (d *Detector) lineFailure(r Report) verdict.Failure {
	l, h := r.Line, r.Hit
	o := headroom.Origin{PID: l.Origin.PID, UID: l.Origin.UID, Cgroup: l.Origin.Cgroup}
	if h.Kernel && h.Fields.Cgroup != "" {
		o = headroom.Origin{UID: -1, Cgroup: h.Fields.Cgroup}
	}
	if o.PID == logline.Unknown {
		o.PID = 0
	}
	who := Who(l)
	if h.Fields.Relayed {
		// The line relays a failure through a gRPC error: the kubelet
		// reporting what the container runtime could not start (found on
		// the real node, where containerd.service at its TasksMax was
		// reported as the kubelet failing with no limit at its maximum).
		// The process that failed ran in the runtime's unit.
		if u := d.runtime; u != "" && l.Origin.Unit != u {
			o = headroom.Origin{UID: -1, Cgroup: "/system.slice/" + u}
			who = relayedWho(u, l)
		}
	}
	now := d.clock.Now()
	node := d.peakAround(l.Time)
	a := d.attribute(o, node, now)
	switch {
	case a.Layer == headroom.LayerNode:
		// The node's message names its top consumers: count them now if
		// the node has moved since they were counted.
		d.censusFor(now, node)
	case a.Layer == headroom.LayerCgroup && a.Cgroup != nil:
		d.members.remember(o.PID, *a.Cgroup, now)
	case a.Layer == headroom.LayerNone && o.PID > 0:
		// The process is gone and no limit is at its maximum now; if it
		// was in a cgroup that refused forks moments ago, that is the limit
		// its line reports, as the lines before it said.
		if cg, ok := d.members.lookup(o.PID, now, d.cfg.Verdict.FailureWindow); ok {
			a.Layer, a.Limit, a.Used, a.Max, a.Cgroup = headroom.LayerCgroup, "pids.max", cg.Current, cg.Max.Value, &cg
			a.Reason = headroom.ReasonMember(cg, o.PID)
		}
	}
	if late := now.Sub(l.Time); a.Layer == headroom.LayerNone && late > lateLine {
		// Read long after it was logged (the agent was not running, or
		// caught up with a backlog): the limits now say nothing of then,
		// and the cgroup that refused may be gone. Found on the real node
		// when the agent's pod was replaced.
		a.Reason = headroom.ReasonReadLate(late, node)
	}
	if a.Cgroup != nil {
		a.Cgroup.Refused = d.refusedSince(*a.Cgroup)
	}
	return verdict.Failure{Class: h.Class, Signature: h.Signature, Trust: h.Trust, Who: who, Attribution: a}
}

// lateLine is how long after it was logged a line must be read for the
// limits at hand to say nothing of the failure.
const lateLine = 5 * time.Second

// attribute attributes a failure from o against node n. A storm repeats
// one origin thousands of times a second: an attribution of the same origin
// against the same node sample made within freshSample serves again, as a
// node sample does, so that the host is read a few times per origin per
// second whatever the line rate.
func (d *Detector) attribute(o headroom.Origin, n headroom.Node, now time.Time) headroom.Attribution {
	k := attrKey{origin: o, node: n}
	if c, ok := d.attrs[k]; ok && now.Sub(c.at) < freshSample {
		a := c.a
		if a.Cgroup != nil {
			cg := *a.Cgroup
			a.Cgroup = &cg
		}
		return a
	}
	// Only a non-root UID with a finite RLIMIT_NPROC needs the tasks per
	// UID: the census is taken (at most once per minCensusAge) only then.
	a := headroom.Attribute(d.cfg.Sources.Root, n, d.hs, o, func() *headroom.Scan { return d.censusFor(now, n) })
	if d.attrs == nil || len(d.attrs) >= maxAttrs {
		d.attrs = make(map[attrKey]attrAt)
	}
	d.attrs[k] = attrAt{a: a, at: now}
	return a
}

// refusalFailure turns an increase of a cgroup's refused-fork counter into
// a failure.
func (d *Detector) refusalFailure(r Report) (verdict.Failure, bool) {
	t := r.Refusal.Target
	return d.cgroupRefusal(t.Hierarchy, t.Path, r.Refusal.Refused)
}

// cgroupRefusal is a failure of n forks whose refusal the kernel counted
// at the cgroup at path p of h: refused by p's pids.max, or, where the
// kernel counts at the forking cgroup, by an ancestor's
// (headroom.RefusingCgroup). It remembers the processes that were in the
// refusing cgroup.
func (d *Detector) cgroupRefusal(h headroom.Hierarchy, p string, n uint64) (verdict.Failure, bool) {
	counted, err := headroom.DescribeCgroup(d.cfg.Sources.Root, h, p)
	if err != nil {
		return verdict.Failure{}, false
	}
	refused := d.refusedSince(counted)
	c := headroom.RefusingCgroup(d.cfg.Sources.Root, h, counted)
	p = c.Path
	now := d.clock.Now()
	// In a storm a cgroup reports refusals many times a second: its
	// processes are listed again at most every freshSample.
	key := pidsevents.Target{Hierarchy: h, Path: p}.Key()
	if last, ok := d.listed[key]; !ok || now.Sub(last) >= freshSample {
		if pids, err := headroom.CgroupPIDs(h, p, maxMembers); err == nil {
			for _, pid := range pids {
				d.members.remember(pid, c, now)
			}
		}
		if d.listed == nil || len(d.listed) >= maxAttrs {
			d.listed = map[string]time.Time{}
		}
		d.listed[key] = now
	}
	c.Refused = refused
	a := headroom.Attribution{Layer: headroom.LayerCgroup, Limit: "pids.max", Used: c.Current, Max: c.Max.Value, Cgroup: &c, Node: d.peakAround(now),
		Reason: fmt.Sprintf("the kernel refused %d forks in cgroup %s (pids.max %s)", n, c.Path, c.Max)}
	return verdict.Failure{Class: signature.ClassProcess, Trust: logline.TrustKernel, Attribution: a}, true
}

// countedFailure turns the eBPF counter's count of refused creations into
// a failure at the limit the kernel refused them at. Nobody can forge it:
// a node-level count turns the condition True on its own.
func (d *Detector) countedFailure(r Report) (verdict.Failure, bool) {
	c := r.Counted
	class := signature.ClassProcess
	if c.Class == forkfail.ClassThread {
		class = signature.ClassThread
	}
	who := countedWho(d.cfg.Sources.Root, c)
	now := d.clock.Now()
	var a headroom.Attribution
	switch {
	case c.Limit == forkfail.LimitCgroup && c.Refusing != "":
		f, ok := d.cgroupRefusal(c.Hierarchy, c.Refusing, c.Count)
		f.Class, f.Who = class, who
		return f, ok
	case c.NodeNamespace:
		n := d.peakAround(now)
		a = headroom.Attribution{Layer: headroom.LayerNode, Limit: nodeSysctl(c.Limit), Used: uint64(max(c.Used, 0)), Max: uint64(max(c.Max, 0)), Node: n,
			Reason: fmt.Sprintf("the kernel refused %d creations at %s (%d of %d)", c.Count, nodeSysctl(c.Limit), c.Used, c.Max)}
		d.censusFor(now, n) // the message names the top consumers
	case c.Limit == forkfail.LimitNproc:
		u := headroom.User{PID: int(c.TGID), UID: int(c.UID), Comm: c.Comm, Soft: headroom.Finite(uint64(max(c.Max, 0))), Tasks: uint64(max(c.Used, 0)), AtLimit: true}
		a = headroom.Attribution{Layer: headroom.LayerUser, Limit: "RLIMIT_NPROC", Used: u.Tasks, Max: u.Soft.Value, User: &u,
			Reason: fmt.Sprintf("the kernel refused %d creations: uid %d has %d processes, its RLIMIT_NPROC is %d", c.Count, c.UID, c.Used, c.Max)}
	case c.Limit == forkfail.LimitPIDMax:
		a = headroom.Attribution{Layer: headroom.LayerNone,
			Reason: fmt.Sprintf("the kernel refused %d creations: PID namespace %d has no PID left under its own pid_max %d", c.Count, c.PIDNS, c.Max)}
	default:
		a = headroom.Attribution{Layer: headroom.LayerNone,
			Reason: fmt.Sprintf("the kernel refused %d creations with EAGAIN, and no limit was at its maximum when they were read", c.Count)}
	}
	return verdict.Failure{Class: class, Trust: logline.TrustKernel, Who: who, Attribution: a, Counted: c.Count}, true
}

// nodeSysctl names a node limit as its sysctl.
func nodeSysctl(l forkfail.Limit) string {
	if l == forkfail.LimitThreadsMax {
		return headroom.BindingThreadsMax.Sysctl()
	}
	return headroom.BindingPIDMax.Sysctl()
}

// countedWho describes the process a count is of: "bash (pid 4121, pod
// default/web)"; "" when the counter had no room to say.
func countedWho(root hostfs.Root, c Counted) string {
	if c.TGID == 0 {
		return ""
	}
	name := logline.Sanitize(c.Comm, 32)
	if name == "" {
		name = "process"
	}
	s := fmt.Sprintf("%s (pid %d", name, c.TGID)
	if p := headroom.PodOfPath(root, c.Cgroup); p != nil {
		s += ", pod " + p.String()
	} else if c.Cgroup != "" && c.Cgroup != "/" {
		s += ", " + logline.Sanitize(path.Base(c.Cgroup), 64)
	}
	return s + ")"
}

// refusedSince is how many forks a cgroup refused since the agent took its
// baseline: its lifetime counter includes refusals from before the agent.
func (d *Detector) refusedSince(c headroom.Cgroup) uint64 {
	src := d.src.Load()
	if src == nil {
		return c.Refused
	}
	for _, h := range d.hs {
		if h.Version == c.Version {
			return src.RefusedSince(h, c.Path, c.Refused)
		}
	}
	return c.Refused
}

// censusFor returns a census that describes the node n at now: one no
// older than minCensusAge, and one taken since the node's task count moved
// by more than a tenth of its limit (a storm that starts right after a
// census makes it stale at once: its consumers are not the storm's). A walk
// for a move comes at most every minCensusGap, so a node that keeps moving
// is not walked without bound. It walks /proc (without the lock) only then.
func (d *Detector) censusFor(now time.Time, n headroom.Node) *headroom.Scan {
	moved := max(n.Tasks, d.census.Tasks)-min(n.Tasks, d.census.Tasks) > n.Limit/10
	switch {
	case d.censusAt.IsZero() || now.Sub(d.censusAt) >= minCensusAge:
		d.takeCensus(false)
	case moved && now.Sub(d.movedCensusAt) >= minCensusGap:
		d.movedCensusAt = now
		d.takeCensus(false)
	}
	return &d.census
}

// takeCensus walks /proc once: the tasks per UID, the top consumers and,
// with zombies, the zombie census.
func (d *Detector) takeCensus(zombies bool) {
	scan, err := headroom.Walk(d.cfg.Sources.Root, censusParents)
	if err != nil && scan.Processes == 0 {
		d.log.Warn("process census failed", "err", err)
		return
	}
	d.observeCensus(scan, zombies)
}

// observeCensus keeps a walk of /proc as the census and hands the verdict
// its top consumers and, with zombies, its zombie parents.
func (d *Detector) observeCensus(scan headroom.Scan, zombies bool) {
	d.census, d.censusAt = scan, d.clock.Now()
	consumers := headroom.TopConsumers(d.cfg.Sources.Root, d.hs, scan)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.corr.ObserveConsumers(consumers)
	if zombies {
		d.corr.ObserveZombies(scan.ZombieParents)
	}
}
