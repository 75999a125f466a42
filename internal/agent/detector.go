package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/state"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// Sink receives the detector's output: the condition when it changes (and
// first, the initial condition) and every Event.
type Sink interface {
	Condition(c verdict.Condition)
	Event(e verdict.Event)
}

// Refresher is a Sink that also takes the condition when only its message
// moved materially (the numbers of a condition that holds), at most once
// per refreshEvery: the Node's message is kept current without a
// transition.
type Refresher interface {
	Refresh(c verdict.Condition)
}

// refreshEvery bounds how often a message refresh is delivered.
const refreshEvery = 10 * time.Second

// DetectorConfig configures a Detector.
type DetectorConfig struct {
	Sources Config
	Verdict verdict.Config
	// SampleInterval is how often the node headroom is sampled.
	SampleInterval time.Duration
	// CensusInterval is how often every process is counted even when
	// nothing is wrong: the zombie census and its trend (default 1m).
	CensusInterval time.Duration
}

// Detector is the whole detector: the live sources, the headroom sampler
// and the verdict, reporting to a sink.
type Detector struct {
	cfg     DetectorConfig
	m       *signature.Matcher
	clock   clock.WithTicker
	log     *slog.Logger
	sink    Sink
	mu      sync.Mutex // guards corr against the state saver
	sampler *headroom.Sampler
	corr    *verdict.Correlator
	hs      []headroom.Hierarchy // under mu; found once in Run
	last    verdict.Condition
	printed bool
	// The condition last delivered (a change or a refresh), the node's
	// usage then, and when.
	sent        verdict.Condition
	sentPercent float64
	sentAt      time.Time

	src      atomic.Pointer[Sources]
	matches  map[MatchKey]uint64 // under mu
	rejected map[string]uint64   // under mu

	// Owned by Run's goroutine.
	census   headroom.Scan // the last walk of /proc
	censusAt time.Time     // zero before the first
	members  members       // recent cgroups of processes seen failing
	attrs    map[attrKey]attrAt
}

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

// freshSample is how old a node sample may be and still serve a failure
// report without a new one.
const freshSample = 100 * time.Millisecond

// maxBatch bounds the reports judged before the condition is evaluated.
const maxBatch = 1024

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

// NewDetector returns a detector; nothing runs until Run.
func NewDetector(cfg DetectorConfig, m *signature.Matcher, clk clock.WithTicker, log *slog.Logger, sink Sink) *Detector {
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 2 * time.Second
	}
	if cfg.CensusInterval <= 0 {
		cfg.CensusInterval = time.Minute
	}
	return &Detector{cfg: cfg, m: m, clock: clk, log: log, sink: sink,
		sampler: headroom.NewSampler(cfg.Sources.Root), corr: verdict.New(cfg.Verdict, clk),
		matches: map[MatchKey]uint64{}, rejected: map[string]uint64{}}
}

// Run runs until ctx is done (then it returns nil) or the node layer cannot
// be read at start.
func (d *Detector) Run(ctx context.Context) error {
	defer func() { _ = d.sampler.Close() }()
	scfg := d.cfg.Sources
	if scfg.StateDir != "" {
		// The condition and event aggregation survive a restart: no flip,
		// no re-announcement.
		if st, err := state.NewStore(scfg.StateDir).Load(); err == nil && len(st.Verdict) > 0 {
			var snap verdict.Snapshot
			if err := json.Unmarshal(st.Verdict, &snap); err == nil {
				d.corr.Restore(snap)
				d.last = snap.Condition
			}
		}
		scfg.Extra = d.snapshot
	}
	hs, err := headroom.Hierarchies(scfg.Root)
	if err != nil {
		d.log.Warn("cgroup layer not available", "err", err)
	}
	n, err := d.sampler.Node()
	if err != nil {
		return fmt.Errorf("node headroom: %w", err)
	}
	d.mu.Lock()
	d.hs = hs
	d.corr.Record(n)
	d.mu.Unlock()
	// The start-up audit becomes Events; the census follows at its interval.
	if diag, err := headroom.Diagnose(scfg.Root, headroom.DiagnoseOptions{}); err == nil || diag.Node.PIDMax > 0 {
		d.mu.Lock()
		d.corr.ObserveAudit(diag.Audit)
		d.mu.Unlock()
	}
	d.takeCensus(true)
	d.evaluate(true)

	src := NewSources(scfg, d.m, d.clock, d.log)
	d.src.Store(src)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx) }()
	tick := d.clock.NewTicker(time.Second)
	defer tick.Stop()
	nextSample := d.clock.Now().Add(d.cfg.SampleInterval)
	nextCensus := d.clock.Now().Add(d.cfg.CensusInterval)
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case err := <-errc:
			return err
		case r := <-src.Reports():
			d.observe(r)
			// In a storm, judge what is already waiting before evaluating:
			// the condition and the Events are evaluated once per batch,
			// not once per line.
			for more, n := true, 0; more && n < maxBatch; n++ {
				select {
				case r := <-src.Reports():
					d.observe(r)
				default:
					more = false
				}
			}
			d.evaluate(false)
		case now := <-tick.C():
			if !now.Before(nextSample) {
				if n, err := d.sampler.Node(); err == nil {
					d.mu.Lock()
					d.corr.Record(n)
					cond := d.corr.Condition()
					d.mu.Unlock()
					// While the node is short of PIDs its message names the
					// top consumers: keep them fresh.
					if cond.Status || n.UsedPercent >= d.cfg.Verdict.WarningPercent {
						d.censusFor(now, n)
					}
				} else {
					d.log.Warn("node headroom sample failed", "err", err)
				}
				nextSample = now.Add(d.cfg.SampleInterval)
			}
			if !now.Before(nextCensus) {
				d.takeCensus(true)
				nextCensus = now.Add(d.cfg.CensusInterval)
			}
			d.evaluate(false)
		}
	}
}

// snapshot is the verdict to persist, for the state saver.
func (d *Detector) snapshot() json.RawMessage {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := json.Marshal(d.corr.Snapshot())
	if err != nil {
		return nil
	}
	return b
}

// observe turns a report into a failure attributed at the moment it
// happened. The evidence is read from the host first, without the lock; the
// lock is held only to hand it to the verdict.
func (d *Detector) observe(r Report) {
	d.mu.Lock()
	d.count(r)
	_, fresh := d.corr.Peak(freshSample)
	d.mu.Unlock()
	// A failure storm would otherwise sample the node once per line: a
	// sample of the last freshSample serves every report in it.
	if !fresh {
		n, err := d.sampler.Node()
		if err != nil {
			d.log.Warn("node headroom sample failed", "err", err)
			return
		}
		d.mu.Lock()
		d.corr.Record(n)
		d.mu.Unlock()
	}
	var f verdict.Failure
	switch r.Kind {
	case KindMatch:
		f = d.lineFailure(r)
	case KindRejected:
		var ok bool
		if f, ok = d.refusalFailure(r); !ok {
			return // the cgroup is gone
		}
	default:
		return
	}
	d.mu.Lock()
	d.corr.Observe(f)
	d.mu.Unlock()
}

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
			a.Reason = fmt.Sprintf("cgroup %s refused forks at pids.max %s while pid %d was in it", cg.Path, cg.Max, o.PID)
		}
	}
	if a.Cgroup != nil {
		a.Cgroup.Rejected = d.refusedSince(*a.Cgroup)
	}
	return verdict.Failure{Class: h.Class, Signature: h.Signature, Trust: h.Trust, Who: Who(l), Attribution: a}
}

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
// a failure, and remembers the processes that were in the cgroup.
func (d *Detector) refusalFailure(r Report) (verdict.Failure, bool) {
	t := r.Event.Target
	c, err := headroom.DescribeCgroup(d.cfg.Sources.Root, t.Hierarchy, t.Path)
	if err != nil {
		return verdict.Failure{}, false
	}
	now := d.clock.Now()
	if pids, err := headroom.CgroupPIDs(t.Hierarchy, t.Path, maxMembers); err == nil {
		for _, pid := range pids {
			d.members.remember(pid, c, now)
		}
	}
	c.Rejected = d.refusedSince(c)
	a := headroom.Attribution{Layer: headroom.LayerCgroup, Limit: "pids.max", Used: c.Current, Max: c.Max.Value, Cgroup: &c, Node: d.peakAround(now),
		Reason: fmt.Sprintf("the kernel refused %d forks in cgroup %s (pids.max %s)", r.Event.Rejected, c.Path, c.Max)}
	return verdict.Failure{Class: signature.ClassProcess, Trust: logline.TrustKernel, Attribution: a}, true
}

// refusedSince is how many forks a cgroup refused since the agent took its
// baseline: its lifetime counter includes refusals from before the agent.
func (d *Detector) refusedSince(c headroom.Cgroup) uint64 {
	src := d.src.Load()
	if src == nil {
		return c.Rejected
	}
	for _, h := range d.hs {
		if h.Version == c.Version {
			return src.RefusedSince(h, c.Path, c.Rejected)
		}
	}
	return c.Rejected
}

// censusFor returns a census that describes the node n at now: one no
// older than minCensusAge, or than minCensusGap when the node's task count
// has moved by more than a tenth of its limit since (a storm that starts
// right after a census makes it stale at once). It walks /proc (without the
// lock) only then.
func (d *Detector) censusFor(now time.Time, n headroom.Node) *headroom.Scan {
	age := now.Sub(d.censusAt)
	moved := max(n.Tasks, d.census.Tasks)-min(n.Tasks, d.census.Tasks) > n.Limit/10
	if d.censusAt.IsZero() || age >= minCensusAge || (moved && age >= minCensusGap) {
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
	d.census, d.censusAt = scan, d.clock.Now()
	consumers := headroom.TopConsumers(d.cfg.Sources.Root, d.hs, scan)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.corr.ObserveConsumers(consumers)
	if zombies {
		d.corr.ObserveZombies(scan.ZombieParents)
	}
}

// Who describes the process a line came from: "kubelet (pid 3124, kubelet.service)".
func Who(l logline.Line) string {
	o := l.Origin
	name := logline.Sanitize(o.Comm, 32)
	if name == "" && o.PID <= 0 {
		return ""
	}
	if name == "" {
		name = "process"
	}
	s := name + " (pid " + strconv.Itoa(o.PID)
	if o.Unit != "" {
		s += ", " + logline.Sanitize(o.Unit, 64)
	}
	return s + ")"
}

// evaluate reports the condition when it changes (always the first time)
// and every event, and refreshes a Refresher's message when it moved.
func (d *Detector) evaluate(first bool) {
	d.mu.Lock()
	cond, events := d.corr.Evaluate()
	n, _ := d.corr.Node()
	d.mu.Unlock()
	now := d.clock.Now()
	switch {
	case first || !d.printed || cond.Status != d.last.Status || cond.Reason != d.last.Reason:
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
