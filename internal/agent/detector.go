package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// Sink receives the detector's output: the condition when it changes (and
// first, the initial condition) and every Event.
type Sink interface {
	Condition(c verdict.Condition)
	Event(e verdict.Event)
}

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
	// runtime is the container runtime's unit in hs (headroom.RuntimeUnit),
	// found with them: a failure the kubelet relays is judged by it.
	runtime string
	last    verdict.Condition
	printed bool
	// The condition last delivered (a change or a refresh), the node's
	// usage then, and when.
	sent        verdict.Condition
	sentPercent float64
	sentAt      time.Time

	src     atomic.Pointer[Supervisor]
	matches map[MatchKey]uint64   // under mu
	refused map[string]uint64     // under mu
	counted map[CountedKey]uint64 // under mu

	// Owned by Run's goroutine.
	census   headroom.Scan // the last walk of /proc
	censusAt time.Time     // zero before the first
	// movedCensusAt is when the node's move last made a census.
	movedCensusAt time.Time
	members       members // recent cgroups of processes seen failing
	attrs         map[attrKey]attrAt
	listed        map[string]time.Time // when a refusing cgroup's processes were last listed, by target key
}

// freshSample is how old a node sample may be and still serve a failure
// report without a new one.
const freshSample = 100 * time.Millisecond

// maxBatch bounds the reports judged before the condition is evaluated.
const maxBatch = 1024

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
		matches: map[MatchKey]uint64{}, refused: map[string]uint64{}, counted: map[CountedKey]uint64{}}
}

// Run runs until ctx is done (then it returns nil) or the node layer cannot
// be read at start.
func (d *Detector) Run(ctx context.Context) error {
	defer func() { _ = d.sampler.Close() }()
	scfg := d.cfg.Sources
	// The one load of the state file: the condition and the Event
	// aggregation survive a restart (no flip, no re-announcement), and the
	// sources resume where they stood.
	keep := loadState(scfg.StateDir, d.log)
	if len(keep.st.Verdict) > 0 {
		var snap verdict.Snapshot
		if err := json.Unmarshal(keep.st.Verdict, &snap); err == nil {
			d.corr.Restore(snap)
			d.last = snap.Condition
		}
	}
	keep.verdict = d.snapshot
	hs, hsErr := headroom.Hierarchies(scfg.Root)
	if hsErr != nil {
		d.log.Warn("cgroup layer not available", "err", hsErr)
	}
	n, err := d.sampler.Node()
	if err != nil {
		return fmt.Errorf("node headroom: %w", err)
	}
	d.mu.Lock()
	d.hs, d.runtime = hs, headroom.RuntimeUnit(hs)
	d.corr.Record(n)
	d.mu.Unlock()
	// The start-up audit becomes Events, and its walk of /proc is the first
	// census: /proc is walked once at start-up, not twice.
	diag, err := headroom.Diagnose(scfg.Root, headroom.DiagnoseOptions{TopZombieParents: censusParents})
	if err == nil || diag.Node.PIDMax > 0 {
		d.mu.Lock()
		d.corr.ObserveAudit(diag.Audit)
		d.mu.Unlock()
	}
	if diag.Scan.Processes > 0 {
		d.observeCensus(diag.Scan, true)
	} else {
		d.takeCensus(true)
	}
	d.evaluate()

	src := NewSupervisor(scfg, d.m, d.clock, d.log)
	src.keep = keep // loaded once
	src.useHierarchies(hs, hsErr)
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
			d.evaluate()
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
			d.evaluate()
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
	case KindRefused:
		var ok bool
		if f, ok = d.refusalFailure(r); !ok {
			return // the cgroup is gone
		}
	case KindCounted:
		var ok bool
		if f, ok = d.countedFailure(r); !ok {
			return // the cgroup is gone
		}
	default:
		return
	}
	d.mu.Lock()
	d.corr.Observe(f)
	d.mu.Unlock()
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

// relayedWho names a failure of the runtime's unit that the line's process
// reported: "containerd.service (reported by kubelet, pid 516)".
func relayedWho(unit string, l logline.Line) string {
	by := logline.Sanitize(l.Origin.Comm, 32)
	if by == "" {
		by = "a process"
	}
	if l.Origin.PID > 0 {
		by += ", pid " + strconv.Itoa(l.Origin.PID)
	}
	return unit + " (reported by " + by + ")"
}
