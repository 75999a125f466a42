package verdict

import (
	"slices"
	"sort"
	"time"
)

// Snapshot is what of the verdict survives a restart: the condition (and its
// transition time), the evidence behind it, and the event aggregation, so
// that a restart neither flips the condition nor announces again what was
// announced within the interval.
type Snapshot struct {
	Condition       Condition       `json:"condition"`
	LastBad         time.Time       `json:"lastBad"`
	LastNodeFailure time.Time       `json:"lastNodeFailure"`
	NodeFailureMsg  string          `json:"nodeFailureMessage,omitempty"`
	LastUnitFailure time.Time       `json:"lastUnitFailure"`
	UnitFailureMsg  string          `json:"unitFailureMessage,omitempty"`
	Events          []SnapshotEvent `json:"events,omitempty"`
	Window          time.Time       `json:"window"`
	// Writes are the times of the Events the write budget counts, so
	// that a restart in a storm does not renew it.
	Writes []time.Time `json:"writes,omitempty"`
}

// SnapshotEvent is one aggregation in a Snapshot.
type SnapshotEvent struct {
	Event        Event     `json:"event"`
	Pending      int       `json:"pending"`
	LastAnnounce time.Time `json:"lastAnnounce"`
	Deferred     bool      `json:"deferred,omitempty"`
}

// Snapshot returns the state to persist.
func (c *Correlator) Snapshot() Snapshot {
	s := Snapshot{
		Condition: c.cond, LastBad: c.lastBad,
		LastNodeFailure: c.lastNodeFailure, NodeFailureMsg: c.nodeFailureMsg,
		LastUnitFailure: c.lastUnitFailure, UnitFailureMsg: c.unitFailureMsg,
		Window: c.window, Writes: slices.Clone(c.writes),
	}
	keys := make([]string, 0, len(c.aggs))
	for k := range c.aggs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a := c.aggs[k]
		s.Events = append(s.Events, SnapshotEvent{Event: a.ev, Pending: a.pending, LastAnnounce: a.lastAnnounce, Deferred: a.deferred})
	}
	return s
}

// Restore takes a persisted state; a condition of another type is ignored.
func (c *Correlator) Restore(s Snapshot) {
	if s.Condition.Type != ConditionType {
		return
	}
	c.cond, c.lastBad = s.Condition, s.LastBad
	c.lastNodeFailure, c.nodeFailureMsg = s.LastNodeFailure, s.NodeFailureMsg
	c.lastUnitFailure, c.unitFailureMsg = s.LastUnitFailure, s.UnitFailureMsg
	c.window, c.writes = s.Window, slices.Clone(s.Writes)
	clear(c.aggs)
	for _, e := range s.Events {
		c.aggs[aggKey(e.Event.Reason, e.Event.Subject)] = &agg{ev: e.Event, pending: e.Pending, lastAnnounce: e.LastAnnounce, deferred: e.Deferred}
	}
}
