package agent

import (
	"math"
	"strings"
	"time"

	"github.com/pidpressure/pidpressure/internal/verdict"
)

// Refresher is a Sink that also takes the condition when only its message
// moved materially (the numbers of a condition that holds), at most once
// per refreshEvery: the Node's message is kept current without a
// transition.
type Refresher interface {
	Refresh(c verdict.Condition)
}

// refreshEvery bounds how often a message refresh is delivered.
const refreshEvery = 10 * time.Second

// evaluate reports the condition when it changes (always the first time)
// and every event, and refreshes a Refresher's message when it moved.
func (d *Detector) evaluate() {
	d.mu.Lock()
	cond, events := d.corr.Evaluate()
	n, _ := d.corr.Node()
	d.mu.Unlock()
	now := d.clock.Now()
	if cond.Status && (!d.printed || cond.Status != d.last.Status || cond.Reason != d.last.Reason) &&
		(d.censusAt.IsZero() || now.Sub(d.censusAt) >= minCensusAge) {
		// A transition to True names the top consumers, and only NPD's
		// heartbeat carries a later refresh of the message to the Node:
		// count them now. Found on the real node, where a prediction named
		// the consumers of the census a minute before, not the pods whose
		// zombies made it.
		d.takeCensus(false)
		d.mu.Lock()
		var more []verdict.Event
		cond, more = d.corr.Evaluate()
		d.mu.Unlock()
		events = append(events, more...)
	}
	switch {
	case !d.printed || cond.Status != d.last.Status || cond.Reason != d.last.Reason:
		d.sink.Condition(cond)
		d.printed = true
		d.sent, d.sentPercent, d.sentAt = cond, n.UsedPercent, now
	case now.Sub(d.sentAt) >= refreshEvery && materially(d.sent.Message, cond.Message, d.sentPercent, n.UsedPercent):
		if r, ok := d.sink.(Refresher); ok {
			r.Refresh(cond)
			d.sent, d.sentPercent, d.sentAt = cond, n.UsedPercent, now
		}
	}
	d.last = cond
	for _, e := range events {
		d.sink.Event(e)
	}
}

// materially reports whether a condition's message moved enough to be
// worth a refresh: its words changed (another reason for it, other
// consumers, recovering or not), or the node's usage moved by a point or
// more. A countdown or a task count that moves a little is not news.
func materially(sent, now string, sentPercent, nowPercent float64) bool {
	if sent == now {
		return false
	}
	return words(sent) != words(now) || math.Abs(nowPercent-sentPercent) >= 1
}

// words is a message without its digits.
func words(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, s)
}
