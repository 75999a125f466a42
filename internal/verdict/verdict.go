package verdict

import (
	"fmt"
	"sort"
	"time"

	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
)

// ConditionType is the node condition this agent owns. Never kubelet's
// PIDPressure.
const ConditionType = "PIDPressureRisk"

// Reason is the condition's reason.
type Reason string

// The condition reasons, highest first.
const (
	ReasonExhausted  Reason = "PIDExhausted"
	ReasonPredicted  Reason = "PIDExhaustionPredicted"
	ReasonLow        Reason = "PIDHeadroomLow"
	ReasonSufficient Reason = "PIDHeadroomSufficient"
)

// EventReason is an Event's reason.
type EventReason string

// The Event reasons.
const (
	EventProcessCreationFailed EventReason = "ProcessCreationFailed"
	EventThreadCreationFailed  EventReason = "ThreadCreationFailed"
	EventPodPIDsLimitReached   EventReason = "PodPIDsLimitReached"
	EventUnitTasksMaxReached   EventReason = "UnitTasksMaxReached"
	EventUserProcessLimit      EventReason = "UserProcessLimitReached"
	EventZombiesAccumulating   EventReason = "ZombieProcessesAccumulating"
	EventPIDLimitMisconfigured EventReason = "PIDLimitMisconfigured"
	eventOtherSubjectsSuffix               = " (other subjects)"
)

// EventReasons lists every Event reason.
func EventReasons() []EventReason {
	return []EventReason{EventProcessCreationFailed, EventThreadCreationFailed, EventPodPIDsLimitReached,
		EventUnitTasksMaxReached, EventUserProcessLimit, EventZombiesAccumulating, EventPIDLimitMisconfigured}
}

// Condition is the state of PIDPressureRisk.
type Condition struct {
	Type               string    `json:"type"`
	Status             bool      `json:"status"`
	Reason             Reason    `json:"reason"`
	Message            string    `json:"message"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// Event is one Event to announce.
type Event struct {
	Reason EventReason `json:"reason"`
	// Warning is false for Normal events.
	Warning bool   `json:"warning"`
	Subject string `json:"subject"`
	Message string `json:"message"`
	// Count is how many times the fact was seen since it was first announced.
	Count     int       `json:"count"`
	FirstTime time.Time `json:"firstTime"`
	LastTime  time.Time `json:"lastTime"`
}

// Config holds the thresholds.
type Config struct {
	// WarningPercent of the node limit turns the condition True (PIDHeadroomLow).
	WarningPercent float64
	// RecoveryPercent: the condition turns False only below it.
	RecoveryPercent float64
	// QuietPeriod: and only after this long without a reason to be True.
	QuietPeriod time.Duration
	// FailureWindow: a node-level failure keeps PIDExhausted this long.
	FailureWindow time.Duration
	// TrendWindow is the span of samples the trend is fitted over.
	TrendWindow time.Duration
	// Horizon: a predicted exhaustion within it is PIDExhaustionPredicted.
	Horizon time.Duration
	// MinTrendSamples and MinTrendGrowth keep the prediction off noise and
	// tiny numbers: the fit needs that many samples and that many tasks of
	// growth over its span.
	MinTrendSamples int
	MinTrendGrowth  uint64
	// EventInterval: a subject's repeats are announced at most once per it.
	EventInterval time.Duration
	// MaxSubjects announced per interval per reason; the rest are folded
	// into one event per reason.
	MaxSubjects int
	// ZombieThreshold: a parent holding this many zombies is announced.
	ZombieThreshold uint64
	// MaxMessage bounds messages (bytes).
	MaxMessage int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		WarningPercent:  85,
		RecoveryPercent: 80,
		QuietPeriod:     5 * time.Minute,
		FailureWindow:   2 * time.Minute,
		TrendWindow:     10 * time.Minute,
		Horizon:         30 * time.Minute,
		MinTrendSamples: 6,
		MinTrendGrowth:  500,
		EventInterval:   5 * time.Minute,
		MaxSubjects:     5,
		ZombieThreshold: 50,
		MaxMessage:      1024,
	}
}

// Failure is one observed failure to create a task (a matched log line or a
// pids.events increase), with the limit it was attributed to at that moment.
type Failure struct {
	// Class is process or thread ("" for a refused-fork count: fork, process).
	Class signature.Class
	// Signature is the matched signature ("" for a refused-fork count).
	Signature string
	// Trust of the line (TrustKernel for a pids.events count).
	Trust logline.Trust
	// Who is a short description of the process, e.g.
	// "kubelet (pid 3124, kubelet.service)"; "" when unknown.
	Who string
	// Attribution is the binding limit at the time.
	Attribution headroom.Attribution
	// Refused is the number of forks a pids.events increase counted (0 for a line).
	Refused uint64
}

// sample is one node headroom sample.
type sample struct {
	t time.Time
	n headroom.Node
}

type agg struct {
	ev           Event
	pending      int
	lastAnnounce time.Time
}

// Correlator holds the verdict. It is not safe for concurrent use.
type Correlator struct {
	cfg   Config
	clock clock.PassiveClock

	node    headroom.Node
	hasNode bool
	samples []sample
	// consumers are the top consumers of the node's tasks from the last
	// census, named when a node-level limit binds.
	consumers []headroom.Consumer
	// zombies are the zombie counts per parent PID of the last census, for
	// the trend of the next.
	zombies   map[int]uint64
	zombiesAt time.Time

	lastNodeFailure time.Time
	nodeFailureMsg  string
	lastUnitFailure time.Time
	unitFailureMsg  string

	cond    Condition
	lastBad time.Time

	aggs      map[string]*agg
	announced map[EventReason]int // new subjects announced in the current interval
	window    time.Time           // start of the current interval
	out       []Event
	tally     map[EventReason]*Tally
}

// Tally counts what happened to a reason's occurrences: announced at once
// as a new Event, folded into an existing Event's count, and the summaries
// ("N times since …") announced later for the folded ones.
type Tally struct {
	Announced, Aggregated, Summaries uint64
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

// Prediction returns the time until the binding node limit is reached at
// the current growth, when the trend is worth trusting.
func (c *Correlator) Prediction() (time.Duration, bool) {
	d, _, ok := c.predict()
	return d, ok
}

// Node returns the last node sample.
func (c *Correlator) Node() (headroom.Node, bool) { return c.node, c.hasNode }

// New returns a correlator whose condition starts False.
func New(cfg Config, clk clock.PassiveClock) *Correlator {
	now := clk.Now()
	return &Correlator{
		cfg:       cfg,
		clock:     clk,
		cond:      Condition{Type: ConditionType, Reason: ReasonSufficient, Message: "no headroom sample yet", LastTransitionTime: now},
		aggs:      map[string]*agg{},
		announced: map[EventReason]int{},
		window:    now,
		tally:     map[EventReason]*Tally{},
	}
}

// Record adds a node headroom sample.
func (c *Correlator) Record(n headroom.Node) {
	now := c.clock.Now()
	c.node, c.hasNode = n, true
	c.samples = append(c.samples, sample{t: now, n: n})
	cut := 0
	for cut < len(c.samples) && now.Sub(c.samples[cut].t) > c.cfg.TrendWindow {
		cut++
	}
	c.samples = c.samples[cut:]
}

// ObserveConsumers takes the top consumers of the node's tasks from a
// census: a node-level message names them.
func (c *Correlator) ObserveConsumers(cs []headroom.Consumer) { c.consumers = cs }

// PeakAround returns the recorded node sample within span of t with the
// least headroom (the latest on a tie), and false if none was recorded then.
// A line is judged against the samples around the moment it was written, so
// that a line read late (a journal that lags in a storm) is judged as the
// lines before it were, and the Events of one storm agree.
func (c *Correlator) PeakAround(t time.Time, span time.Duration) (headroom.Node, bool) {
	var best headroom.Node
	found := false
	for _, s := range c.samples {
		d := s.t.Sub(t)
		if d < -span || d > span {
			continue
		}
		if !found || s.n.Free() <= best.Free() {
			best, found = s.n, true
		}
	}
	return best, found
}

// Peak returns the recorded node sample of the last span with the least
// headroom (the latest on a tie), and false if none was recorded in it.
// A failure is read after it happened, and the process that failed often
// died of it and released its tasks: it is attributed to the peak of the
// last moments, not only to the latest sample.
func (c *Correlator) Peak(span time.Duration) (headroom.Node, bool) {
	now := c.clock.Now()
	var best headroom.Node
	found := false
	for _, s := range c.samples {
		if now.Sub(s.t) <= span && (!found || s.n.Free() <= best.Free()) {
			best, found = s.n, true
		}
	}
	return best, found
}

// Observe takes one failure.
func (c *Correlator) Observe(f Failure) {
	now := c.clock.Now()
	a := f.Attribution
	who := f.Who
	if who == "" {
		who = "a process"
	}
	verb := "cannot create processes"
	reason := EventProcessCreationFailed
	if f.Class == signature.ClassThread {
		verb, reason = "cannot create threads", EventThreadCreationFailed
	}
	if f.Trust == logline.TrustForged {
		// A kernel message from a non-kernel origin: announce it, rate
		// limited, and let it count for nothing else.
		c.event(reason, "forged", fmt.Sprintf("%s wrote a kernel message it cannot have written (%s): ignored for the node condition", who, f.Signature), true)
		return
	}
	switch a.Layer {
	case headroom.LayerNode:
		c.lastNodeFailure = now
		c.nodeFailureMsg = fmt.Sprintf("%s %s: %s", who, verb, c.nodeNumbers(a.Node))
		c.event(reason, subjectOf(f), c.nodeFailureMsg, true)
	case headroom.LayerCgroup:
		cg := a.Cgroup
		switch {
		case cg != nil && cg.Kind == "unit" && isNodeUnit(cg.Unit):
			c.lastUnitFailure = now
			c.unitFailureMsg = fmt.Sprintf("%s %s; set TasksMax=infinity for %s", cg.Unit, atLimit(cg, "TasksMax"), cg.Unit)
			c.event(EventUnitTasksMaxReached, cg.Unit, c.unitFailureMsg, true)
		case cg != nil && (cg.Kind == "pod" || cg.Kind == "container"):
			subject, label := cg.Path, "cgroup "+cg.Path
			if cg.Pod != nil {
				subject = cg.Pod.String() // namespace/name, or "pod <uid>"
				label = subject
				if cg.Pod.Name != "" {
					label = "pod " + subject
				}
			}
			c.event(EventPodPIDsLimitReached, subject, fmt.Sprintf("%s %s; the pod is contained by design: find what it forks or raise its limit (kubelet podPidsLimit)", label, atLimit(cg, "pids limit")), true)
		case cg != nil && cg.Kind == "unit":
			c.event(EventUnitTasksMaxReached, cg.Unit, fmt.Sprintf("%s %s", cg.Unit, atLimit(cg, "TasksMax")), true)
		case cg != nil:
			c.event(reason, cg.Path, fmt.Sprintf("%s %s: cgroup %s has %d of %d tasks (pids.max), %d forks refused", who, verb, cg.Path, cg.Current, cg.Max.Value, cg.Rejected), true)
		}
	case headroom.LayerUser:
		u := a.User
		subject := "uid ?"
		if u != nil {
			subject = fmt.Sprintf("uid %d", u.UID)
		}
		c.event(EventUserProcessLimit, subject, fmt.Sprintf("%s %s: %s; raise RLIMIT_NPROC (ulimit -u, LimitNPROC=) for it, or run fewer tasks as that user", who, verb, a.Reason), true)
	default:
		c.event(reason, subjectOf(f), fmt.Sprintf("%s %s: %s", who, verb, a.Reason), true)
	}
}

// atLimit says how a cgroup met its pids.max, called limit, in words that
// do not depend on whether the tasks that hit it are still there (a process
// often dies of the failure before its line is read): "reached its TasksMax
// (pids.max 12 of /system.slice/kubelet.service): 20 forks refused, 0 tasks
// now".
func atLimit(cg *headroom.Cgroup, limit string) string {
	return fmt.Sprintf("reached its %s (pids.max %d of %s): %d forks refused, %d tasks now", limit, cg.Max.Value, cg.Path, cg.Rejected, cg.Current)
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

// zombieTrend says how a parent's zombies changed since the previous
// census: " (up 30 in 1m0s)", " (none at the last census 1m0s ago)", "".
func zombieTrend(prev map[int]uint64, prevAt time.Time, z headroom.ZombieParent, now time.Time) string {
	if prev == nil {
		return ""
	}
	ago := now.Sub(prevAt).Round(time.Second)
	before, ok := prev[z.PID]
	switch {
	case !ok:
		return fmt.Sprintf(" (new since the census %s ago)", ago)
	case z.Zombies > before:
		return fmt.Sprintf(" (up %d in %s)", z.Zombies-before, ago)
	case z.Zombies < before:
		return fmt.Sprintf(" (down %d in %s)", before-z.Zombies, ago)
	}
	return fmt.Sprintf(" (unchanged in %s)", ago)
}

// ObserveAudit announces the start-up audit's warnings (as Normal events for
// info findings).
func (c *Correlator) ObserveAudit(findings []headroom.Finding) {
	for _, f := range findings {
		c.event(EventPIDLimitMisconfigured, f.Check, f.Message+"; "+f.Remedy, f.Severity != headroom.SeverityInfo)
	}
}

// subjectOf names the subject of a failure for aggregation.
func subjectOf(f Failure) string {
	if f.Who != "" {
		return f.Who
	}
	return "node"
}

func isNodeUnit(u string) bool {
	for _, n := range headroom.NodeUnits() {
		if n == u {
			return true
		}
	}
	return false
}

// event records one occurrence of (reason, subject) and queues an Event
// when it is new and the per-interval cap allows.
func (c *Correlator) event(reason EventReason, subject, msg string, warning bool) {
	now := c.clock.Now()
	c.rollWindow(now)
	key := string(reason) + "|" + subject
	a := c.aggs[key]
	if a == nil {
		if c.announced[reason] >= c.cfg.MaxSubjects {
			// Too many subjects this interval: fold into one per reason.
			subject = "other subjects"
			msg = "more " + string(reason) + " events than can be announced separately; see the agent's metrics and pidpressure diagnose"
			key = string(reason) + "|" + subject
			a = c.aggs[key]
		}
	}
	if a == nil {
		a = &agg{ev: Event{Reason: reason, Warning: warning, Subject: subject, FirstTime: now}}
		c.aggs[key] = a
		c.announced[reason]++
		a.ev.Count, a.ev.LastTime, a.ev.Message = 1, now, c.clip(msg)
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

func (c *Correlator) rollWindow(now time.Time) {
	if now.Sub(c.window) >= c.cfg.EventInterval {
		c.window = now
		clear(c.announced)
	}
}

func (c *Correlator) clip(s string) string { return logline.Sanitize(s, c.cfg.MaxMessage) }

// Evaluate returns the condition now and the Events to announce since the
// last call.
func (c *Correlator) Evaluate() (Condition, []Event) {
	now := c.clock.Now()
	c.rollWindow(now)
	for key, a := range c.aggs {
		switch {
		case a.pending > 0 && now.Sub(a.lastAnnounce) >= c.cfg.EventInterval:
			a.pending, a.lastAnnounce = 0, now
			e := a.ev
			e.Message = c.clip(fmt.Sprintf("%s (%d times since %s)", e.Message, e.Count, e.FirstTime.UTC().Format(time.RFC3339)))
			c.out = append(c.out, e)
			c.count(e.Reason).Summaries++
		case a.pending == 0 && now.Sub(a.ev.LastTime) > 2*c.cfg.EventInterval:
			delete(c.aggs, key) // quiet for two intervals: a new occurrence is news again
		}
	}
	events := c.out
	c.out = nil
	sort.SliceStable(events, func(i, j int) bool { return events[i].LastTime.Before(events[j].LastTime) })

	reason, msg := c.desired(now)
	switch {
	case reason != ReasonSufficient:
		c.lastBad = now
		if !c.cond.Status {
			c.cond.Status, c.cond.LastTransitionTime = true, now
		}
		c.cond.Reason, c.cond.Message = reason, c.clip(msg)
	case c.cond.Status:
		// Hysteresis: back to False only below the recovery threshold and
		// after the quiet period.
		quiet := now.Sub(c.lastBad)
		if c.hasNode && c.node.UsedPercent < c.cfg.RecoveryPercent && quiet >= c.cfg.QuietPeriod {
			c.cond.Status, c.cond.LastTransitionTime = false, now
			c.cond.Reason, c.cond.Message = ReasonSufficient, c.clip(msg)
		} else {
			// Say what is still awaited: the rest of the quiet period,
			// usage below the recovery threshold, or both (the quiet
			// period runs since the last reason to be True, not since
			// usage fell below the threshold, so once it is over only
			// usage is awaited).
			below := c.hasNode && c.node.UsedPercent < c.cfg.RecoveryPercent
			usage := fmt.Sprintf("usage is below %.0f %%", c.cfg.RecoveryPercent)
			if !c.hasNode {
				usage = fmt.Sprintf("a headroom sample shows usage below %.0f %%", c.cfg.RecoveryPercent)
			}
			left := (c.cfg.QuietPeriod - quiet + time.Second - 1).Truncate(time.Second) // rounded up: never "0s" while waiting
			var awaited string
			switch {
			case quiet >= c.cfg.QuietPeriod:
				awaited = fmt.Sprintf("the quiet period (%s) is over: clears once %s", c.cfg.QuietPeriod, usage)
			case below:
				awaited = fmt.Sprintf("clears in %s if usage stays below %.0f %%", left, c.cfg.RecoveryPercent)
			default:
				awaited = fmt.Sprintf("clears once %s, in %s at the earliest", usage, left)
			}
			c.cond.Message = c.clip("recovering: " + msg + "; " + awaited)
		}
	default:
		c.cond.Reason, c.cond.Message = ReasonSufficient, c.clip(msg)
	}
	return c.cond, events
}

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
}

// SnapshotEvent is one aggregation in a Snapshot.
type SnapshotEvent struct {
	Event        Event     `json:"event"`
	Pending      int       `json:"pending"`
	LastAnnounce time.Time `json:"lastAnnounce"`
}

// Snapshot returns the state to persist.
func (c *Correlator) Snapshot() Snapshot {
	s := Snapshot{
		Condition: c.cond, LastBad: c.lastBad,
		LastNodeFailure: c.lastNodeFailure, NodeFailureMsg: c.nodeFailureMsg,
		LastUnitFailure: c.lastUnitFailure, UnitFailureMsg: c.unitFailureMsg,
		Window: c.window,
	}
	keys := make([]string, 0, len(c.aggs))
	for k := range c.aggs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a := c.aggs[k]
		s.Events = append(s.Events, SnapshotEvent{Event: a.ev, Pending: a.pending, LastAnnounce: a.lastAnnounce})
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
	c.window = s.Window
	clear(c.aggs)
	for _, e := range s.Events {
		c.aggs[string(e.Event.Reason)+"|"+e.Event.Subject] = &agg{ev: e.Event, pending: e.Pending, lastAnnounce: e.LastAnnounce}
	}
}

// Condition returns the condition as last evaluated.
func (c *Correlator) Condition() Condition { return c.cond }

// desired is the reason the evidence supports now, with its message.
func (c *Correlator) desired(now time.Time) (Reason, string) {
	if !c.lastUnitFailure.IsZero() && now.Sub(c.lastUnitFailure) <= c.cfg.FailureWindow {
		return ReasonExhausted, c.unitFailureMsg
	}
	if !c.lastNodeFailure.IsZero() && now.Sub(c.lastNodeFailure) <= c.cfg.FailureWindow {
		return ReasonExhausted, c.nodeFailureMsg
	}
	if !c.hasNode {
		return ReasonSufficient, "no headroom sample yet"
	}
	if tte, rate, ok := c.predict(); ok && tte <= c.cfg.Horizon {
		return ReasonPredicted, withConsumers(fmt.Sprintf("%s, growing %.1f tasks/s: the limit is reached in about %s", nodeNumbers(c.node), rate, tte.Round(time.Minute)), c.consumers)
	}
	if c.node.UsedPercent >= c.cfg.WarningPercent {
		return ReasonLow, withConsumers(fmt.Sprintf("%s (warning at %.0f %%)", nodeNumbers(c.node), c.cfg.WarningPercent), c.consumers)
	}
	return ReasonSufficient, nodeUsage(c.node)
}

// predict is the trend (FitTrend) of the node samples of the trend window:
// the time until the binding limit, the growth in tasks per second, and
// whether it is worth trusting.
func (c *Correlator) predict() (time.Duration, float64, bool) {
	pts := make([]TrendSample, len(c.samples))
	for i, s := range c.samples {
		pts[i] = TrendSample{Time: s.t, Tasks: s.n.Tasks, Limit: s.n.Limit}
	}
	tr := FitTrend(pts, c.cfg)
	return tr.Remaining, tr.Rate, tr.Trusted
}

// nodeNumbers renders the node layer the way an on-call note would, with
// what to do.
func nodeNumbers(n headroom.Node) string {
	return nodeUsage(n) + "; " + remedy(n)
}

// nodeNumbers is the node layer with what to do and who consumes it.
func (c *Correlator) nodeNumbers(n headroom.Node) string {
	return withConsumers(nodeNumbers(n), c.consumers)
}

// withConsumers appends the top consumers to a message; they come last, so
// that a clipped message loses them before the numbers and the remedy.
func withConsumers(msg string, cs []headroom.Consumer) string {
	if s := headroom.Consumers(cs); s != "" {
		return msg + "; " + s
	}
	return msg
}

// nodeUsage is the node layer's numbers alone: what a False condition says
// (a remedy there would send on-call to fix a node that is fine).
func nodeUsage(n headroom.Node) string {
	return fmt.Sprintf("node tasks %d of %d usable (%.0f%%), binding limit %s=%d", n.Tasks, n.Limit, n.UsedPercent, n.Binding.Sysctl(), limitValue(n))
}

func limitValue(n headroom.Node) uint64 {
	if n.Binding == headroom.BindingThreadsMax {
		return n.ThreadsMax
	}
	return n.PIDMax
}

func remedy(n headroom.Node) string {
	if n.Binding == headroom.BindingThreadsMax {
		return fmt.Sprintf("raise kernel.threads-max (now %d)", n.ThreadsMax)
	}
	if n.PIDMax < headroom.RecommendedPIDMax {
		return fmt.Sprintf("raise kernel.pid_max (e.g. %d)", headroom.RecommendedPIDMax)
	}
	return "find what is creating tasks (pidpressure diagnose)"
}
