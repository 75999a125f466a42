package verdict

import (
	"fmt"
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
	// ReasonUnknown is the reason of an Unknown condition: the detector
	// stopped (the node layer could not be read) or a check could not run.
	ReasonUnknown Reason = "PIDPressureUnknown"
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
	// Counted is how many creations the kernel counted as refused (the
	// eBPF counter; 0 for a log line or a pids.events count).
	Counted uint64
}

// sample is one node headroom sample.
type sample struct {
	t time.Time
	n headroom.Node
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
	// nodeCounted is how many creations the kernel counted as refused at a
	// node limit since the node failures began (within FailureWindow).
	nodeCounted     uint64
	lastUnitFailure time.Time
	unitFailureMsg  string

	cond    Condition
	lastBad time.Time

	aggs      map[string]*agg
	announced map[EventReason]int // new subjects announced in the current interval
	// writes are the times of the occurrence Events announced within the
	// last MaxWritesWindow, oldest first (the write budget).
	writes []time.Time
	window time.Time // start of the current interval
	out    []Event
	tally  map[EventReason]*Tally
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
		if c.lastNodeFailure.IsZero() || now.Sub(c.lastNodeFailure) > c.cfg.FailureWindow {
			c.nodeCounted = 0
		}
		c.lastNodeFailure = now
		c.nodeCounted += f.Counted
		c.nodeFailureMsg = fmt.Sprintf("%s %s: %s%s", who, verb, kernelCount(c.nodeCounted), c.nodeNumbers(a.Node))
		c.event(reason, subjectOf(f), c.nodeFailureMsg, true)
	case headroom.LayerCgroup:
		cg := a.Cgroup
		switch {
		case cg != nil && cg.Kind == headroom.KindUnit && isNodeUnit(cg.Unit):
			c.lastUnitFailure = now
			c.unitFailureMsg = fmt.Sprintf("%s %s; set TasksMax=infinity for %s", cg.Unit, atLimit(cg, "TasksMax"), cg.Unit)
			c.event(EventUnitTasksMaxReached, cg.Unit, c.unitFailureMsg, true)
		case cg != nil && (cg.Kind == headroom.KindPod || cg.Kind == headroom.KindContainer):
			subject, label := cg.Path, "cgroup "+cg.Path
			if cg.Pod != nil {
				subject = cg.Pod.String() // namespace/name, or "pod <uid>"
				label = subject
				if cg.Pod.Name != "" {
					label = "pod " + subject
				}
			}
			c.event(EventPodPIDsLimitReached, subject, fmt.Sprintf("%s %s; the pod is contained by design: find what it forks or raise its limit (kubelet podPidsLimit)", label, atLimit(cg, "pids limit")), true)
		case cg != nil && cg.Kind == headroom.KindUnit:
			c.event(EventUnitTasksMaxReached, cg.Unit, fmt.Sprintf("%s %s", cg.Unit, atLimit(cg, "TasksMax")), true)
		case cg != nil:
			c.event(reason, cg.Path, fmt.Sprintf("%s %s: cgroup %s has %d of %d tasks (pids.max), %d forks refused", who, verb, cg.Path, cg.Current, cg.Max.Value, cg.Refused), true)
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

func isNodeUnit(u string) bool {
	for _, n := range headroom.NodeUnits() {
		if n == u {
			return true
		}
	}
	return false
}

func (c *Correlator) clip(s string) string { return logline.Sanitize(s, c.cfg.MaxMessage) }

// Evaluate returns the condition now and the Events to announce since the
// last call.
func (c *Correlator) Evaluate() (Condition, []Event) {
	now := c.clock.Now()
	c.flush(now)
	events := c.out
	c.out = nil

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
	return ReasonSufficient, c.node.UsagePercent() // the numbers alone: a remedy would send on-call to fix a node that is fine
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
