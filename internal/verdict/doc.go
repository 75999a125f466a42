// Package verdict turns what the sources saw — failures to create tasks,
// with the limit each was attributed to, refused-fork counts and headroom
// samples — into the node condition PIDPressureRisk and Events
// (docs/reasons: the reasons and what each message says).
//
// The condition is True (bad) with one reason at a time, highest first:
// PIDExhausted (failures are happening and a node-level limit, or the cgroup
// of a node component, is at its maximum), PIDExhaustionPredicted (the
// trend reaches the binding node limit within the horizon), PIDHeadroomLow
// (usage above the warning threshold); else False with
// PIDHeadroomSufficient. It turns False only below the recovery threshold
// and after a quiet period; a message update never moves the transition
// time. Log text alone never turns it True: a failure counts for the node
// only when its attribution (headroom or a kernel counter) agrees, and a
// forged line counts for nothing but a rate-limited Event.
//
// Events are aggregated per (reason, subject): the first is announced at
// once, repeats are counted and announced at most once per interval, and
// the number of subjects announced per interval is capped, so a storm of
// thousands of failures yields a handful of Events with counts.
//
// The correlator is pure: time comes from an injected clock, and it never
// logs or reads files.
package verdict
