package agent

import (
	"maps"
	"time"

	"github.com/pidpressure/pidpressure/internal/forkfail"
	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// View is the detector's state for metrics and health, taken at once.
type View struct {
	Condition verdict.Condition
	// Node is the last node headroom sample (HasNode false before the first).
	Node    headroom.Node
	HasNode bool
	// Prediction is the time until the binding node limit at the current
	// growth, when Predicting (a trend worth trusting).
	Prediction time.Duration
	Predicting bool
	// Matches counts matched lines by signature, family and trust.
	Matches map[MatchKey]uint64
	// Refused counts forks refused by pids.max, per cgroup path (at most
	// maxRefusedCgroups paths; the rest under "other").
	Refused map[string]uint64
	// Counted counts the creations the kernel refused (the eBPF counter),
	// by limit, subject and class.
	Counted map[CountedKey]uint64
	// Events tallies the Events per reason.
	Events map[verdict.EventReason]verdict.Tally
	// Sources are the live sources (nil before Run starts them).
	Sources []SourceStat
	// Dropped reports: the detector fell behind the sources.
	Dropped uint64
}

// MatchKey labels a matched line.
type MatchKey struct{ Signature, Family, Trust string }

// CountedKey labels the kernel's count of refused creations: the limit
// (forkfail.Limit's names), what it limits (node, pod, unit, cgroup, user,
// namespace or unknown) and the class (process or thread). Each has a few
// values: the series stay bounded whatever the node runs.
type CountedKey struct{ Limit, Subject, Class string }

// countedSubject is what the limit that refused c limits.
func countedSubject(c Counted) string {
	switch {
	case c.NodeNamespace:
		return "node"
	case c.Limit == forkfail.LimitNproc:
		return "user"
	case c.Limit == forkfail.LimitPIDMax:
		return "namespace"
	case c.Limit == forkfail.LimitCgroup:
		switch headroom.KindOf(c.Refusing) {
		case headroom.KindPod, headroom.KindContainer:
			return "pod"
		case headroom.KindUnit:
			return "unit"
		default:
			return "cgroup"
		}
	default:
		return "unknown"
	}
}

// maxRefusedCgroups bounds the per-cgroup refusal counts: pods come and go.
const maxRefusedCgroups = 256

// View returns the detector's state now. It is safe to call at any time.
func (d *Detector) View() View {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := View{Condition: d.corr.Condition(), Matches: maps.Clone(d.matches), Refused: maps.Clone(d.refused), Counted: maps.Clone(d.counted), Events: d.corr.Tally()}
	v.Node, v.HasNode = d.corr.Node()
	v.Prediction, v.Predicting = d.corr.Prediction()
	if src := d.src.Load(); src != nil {
		v.Sources = src.SourceStats()
		v.Dropped = src.Stats().Dropped.Load()
	}
	return v
}

// count records a report for the view; d.mu is held.
func (d *Detector) count(r Report) {
	switch r.Kind {
	case KindMatch:
		d.matches[MatchKey{r.Hit.Signature, r.Hit.Family, string(r.Hit.Trust)}]++
	case KindRefused:
		p := r.Refusal.Target.Path
		if _, ok := d.refused[p]; !ok && len(d.refused) >= maxRefusedCgroups {
			p = "other"
		}
		d.refused[p] += r.Refusal.Refused
	case KindCounted:
		d.counted[CountedKey{r.Counted.Limit.String(), countedSubject(r.Counted), r.Counted.Class.String()}] += r.Counted.Count
	}
}

// Cgroups samples the cgroups that matter to the node now (none before Run
// has found the hierarchies): the kubepods
// cgroup, its QoS classes, each pod, and the node components' units (not
// containers: one series per container is too many). A cgroup that vanishes
// while it is read is left out.
func (d *Detector) Cgroups() []headroom.Cgroup {
	root := d.cfg.Sources.Root
	d.mu.Lock()
	hs := d.hs // the hierarchies Run found: mounts do not move under a running agent
	d.mu.Unlock()
	var out []headroom.Cgroup
	seen := map[string]bool{}
	for _, h := range hs {
		ts, _ := headroom.Discover(root, h) // what was found before an error still counts
		for _, t := range ts {
			if t.Kind == headroom.KindContainer || seen[t.Path] {
				continue
			}
			c, err := headroom.ReadCgroup(h, t.Path)
			if err != nil {
				continue
			}
			c.Kind, c.Pod = t.Kind, t.Pod
			seen[t.Path] = true
			out = append(out, c)
		}
	}
	return out
}
