package verdict

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

type agg struct {
	ev           Event
	pending      int
	lastAnnounce time.Time
	// deferred: new, but not announced yet, for want of write budget.
	deferred bool
}

// Tally counts what happened to a reason's occurrences: announced at once
// as a new Event, folded into an existing Event's count, and the summaries
// ("N times since …") announced later for the folded ones. Deferred counts
// the new ones held back by the write budget (announced later, and counted
// as Announced then).
type Tally struct {
	Announced, Aggregated, Summaries, Deferred uint64
}

// Tally returns the counts per reason since the correlator was created.
func (c *Correlator) Tally() map[EventReason]Tally {
	out := make(map[EventReason]Tally, len(c.tally))
	for r, t := range c.tally {
		out[r] = *t
	}
	return out
}

func (c *Correlator) count(r EventReason) *Tally {
	t := c.tally[r]
	if t == nil {
		t = &Tally{}
		c.tally[r] = t
	}
	return t
}

// ObserveZombies takes a zombie census (the parents holding zombies, most
// first) and announces the parents holding at least the threshold, with the
// trend since the previous census.
func (c *Correlator) ObserveZombies(parents []headroom.ZombieParent) {
	now := c.clock.Now()
	prev, prevAt := c.zombies, c.zombiesAt
	c.zombies, c.zombiesAt = make(map[int]uint64, len(parents)), now
	for _, z := range parents {
		c.zombies[z.PID] = z.Zombies
		if z.Zombies < c.cfg.ZombieThreshold {
			continue
		}
		where := z.Cgroup
		if z.Pod != nil {
			where = "pod " + z.Pod.String()
		}
		if where == "" {
			where = "cgroup unknown"
		}
		c.event(EventZombiesAccumulating, fmt.Sprintf("pid %d", z.PID), fmt.Sprintf("%s (pid %d, %s) holds %d zombie processes%s, each taking a PID: it does not reap its children",
			z.Comm, z.PID, where, z.Zombies, zombieTrend(prev, prevAt, z, now)), true)
	}
}

// ObserveAudit announces the start-up audit's warnings (as Normal events for
// info findings), one per check and subject. A finding is a standing state,
// not an occurrence: one the correlator already holds (announced by this
// agent or, restored from its snapshot, by the one before) is not counted
// again. Found on the real node, where each restart of the agent's pod made
// "2 times since" Events of the audit.
func (c *Correlator) ObserveAudit(findings []headroom.Finding) {
	for _, f := range findings {
		if _, held := c.aggs[aggKey(EventPIDLimitMisconfigured, f.Key())]; held {
			continue
		}
		c.event(EventPIDLimitMisconfigured, f.Key(), f.Message+"; "+f.Remedy, f.Severity != headroom.SeverityInfo)
	}
}

// subjectOf names the subject of a failure for aggregation.
func subjectOf(f Failure) string {
	if f.Who != "" {
		return f.Who
	}
	return "node"
}

// event records one occurrence of (reason, subject) and queues an Event
// when it is new and the per-interval cap allows.
func (c *Correlator) event(reason EventReason, subject, msg string, warning bool) {
	now := c.clock.Now()
	c.rollWindow(now)
	key := aggKey(reason, subject)
	a := c.aggs[key]
	if a == nil {
		if c.announced[reason] >= c.cfg.MaxSubjects {
			// Too many subjects this interval: fold into one per reason.
			subject = "other subjects"
			msg = "more " + string(reason) + " events than can be announced separately; see the agent's metrics and pidpressure diagnose"
			key = aggKey(reason, subject)
			a = c.aggs[key]
		}
	}
	if a == nil {
		a = &agg{ev: Event{Reason: reason, Warning: warning, Subject: subject, FirstTime: now}}
		c.aggs[key] = a
		c.announced[reason]++
		a.ev.Count, a.ev.LastTime, a.ev.Message = 1, now, c.clip(msg)
		if !c.spend(reason, now) {
			a.deferred = true
			c.count(reason).Deferred++
			return
		}
		a.lastAnnounce = now
		c.out = append(c.out, a.ev)
		c.count(reason).Announced++
		return
	}
	c.count(a.ev.Reason).Aggregated++
	a.ev.Count++
	a.ev.LastTime = now
	a.ev.Message = c.clip(msg)
	a.pending++
}

// spend takes one write of the budget for an Event of reason now, and
// reports whether there was one. The audit's findings take none.
func (c *Correlator) spend(reason EventReason, now time.Time) bool {
	if reason == EventPIDLimitMisconfigured || c.cfg.MaxWrites <= 0 {
		return true
	}
	old := 0
	for old < len(c.writes) && now.Sub(c.writes[old]) >= c.cfg.MaxWritesWindow {
		old++
	}
	c.writes = c.writes[old:]
	if len(c.writes) >= c.cfg.MaxWrites {
		return false
	}
	c.writes = append(c.writes, now)
	return true
}

// aggKey is the key of the aggregate of reason and subject.
func aggKey(reason EventReason, subject string) string { return string(reason) + "|" + subject }

func (c *Correlator) rollWindow(now time.Time) {
	if now.Sub(c.window) >= c.cfg.EventInterval {
		c.window = now
		clear(c.announced)
	}
}

// flush queues the Events due now: the new ones the write budget held
// back, and the summaries of aggregates whose interval has passed, as far
// as the budget allows; it forgets aggregates quiet for two intervals.
// The queue is then put in time order.
func (c *Correlator) flush(now time.Time) {
	c.rollWindow(now)
	// Oldest first: when the write budget is short, the earliest news
	// goes out first, and the order does not depend on the map's.
	keys := slices.SortedFunc(maps.Keys(c.aggs), func(x, y string) int {
		return cmp.Or(c.aggs[x].ev.FirstTime.Compare(c.aggs[y].ev.FirstTime), strings.Compare(x, y))
	})
	for _, key := range keys {
		a := c.aggs[key]
		switch {
		case a.deferred:
			if !c.spend(a.ev.Reason, now) {
				continue
			}
			a.deferred, a.pending, a.lastAnnounce = false, 0, now
			c.out = append(c.out, c.summary(a.ev))
			c.count(a.ev.Reason).Announced++
		case a.pending > 0 && now.Sub(a.lastAnnounce) >= c.cfg.EventInterval:
			if !c.spend(a.ev.Reason, now) {
				continue
			}
			a.pending, a.lastAnnounce = 0, now
			c.out = append(c.out, c.summary(a.ev))
			c.count(a.ev.Reason).Summaries++
		case a.pending == 0 && now.Sub(a.ev.LastTime) > 2*c.cfg.EventInterval:
			delete(c.aggs, key) // quiet for two intervals: a new occurrence is news again
		}
	}
	sort.SliceStable(c.out, func(i, j int) bool { return c.out[i].LastTime.Before(c.out[j].LastTime) })
}

// summary is e as announced after its first occurrence: its message with
// how many times since when, once it happened more than once.
func (c *Correlator) summary(e Event) Event {
	if e.Count > 1 {
		e.Message = c.clip(fmt.Sprintf("%s (%d times since %s)", e.Message, e.Count, e.FirstTime.UTC().Format(time.RFC3339)))
	}
	return e
}
