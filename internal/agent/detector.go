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
	"github.com/pidpressure/pidpressure/internal/state"
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

	src      atomic.Pointer[Sources]
	matches  map[MatchKey]uint64 // under mu
	rejected map[string]uint64   // under mu
}

// freshSample is how old a node sample may be and still serve a failure
// report without a new one.
const freshSample = 100 * time.Millisecond

// NewDetector returns a detector; nothing runs until Run.
func NewDetector(cfg DetectorConfig, m *signature.Matcher, clk clock.WithTicker, log *slog.Logger, sink Sink) *Detector {
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 2 * time.Second
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
	// The start-up audit and zombie census become Events.
	if diag, err := headroom.Diagnose(scfg.Root, headroom.DiagnoseOptions{}); err == nil || diag.Node.PIDMax > 0 {
		d.corr.ObserveAudit(diag.Audit)
		d.corr.ObserveZombies(diag.Scan.ZombieParents)
	}
	d.mu.Unlock()
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
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case err := <-errc:
			return err
		case r := <-src.Reports():
			d.observe(r)
			d.evaluate(false)
		case now := <-tick.C():
			if !now.Before(nextSample) {
				if n, err := d.sampler.Node(); err == nil {
					d.mu.Lock()
					d.corr.Record(n)
					d.mu.Unlock()
				} else {
					d.log.Warn("node headroom sample failed", "err", err)
				}
				nextSample = now.Add(d.cfg.SampleInterval)
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

// observe turns a report into a failure attributed at this moment.
func (d *Detector) observe(r Report) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.count(r)
	// A failure storm would otherwise sample the node once per line: a
	// sample of the last freshSample serves every report in it.
	if _, fresh := d.corr.Peak(freshSample); !fresh {
		n, err := d.sampler.Node()
		if err != nil {
			d.log.Warn("node headroom sample failed", "err", err)
			return
		}
		d.corr.Record(n)
	}
	// The fullest sample of the last two intervals (Correlator.Peak says why).
	n, _ := d.corr.Peak(2 * d.cfg.SampleInterval)
	root := d.cfg.Sources.Root
	switch r.Kind {
	case KindMatch:
		l, h := r.Line, r.Hit
		o := headroom.Origin{PID: l.Origin.PID, UID: l.Origin.UID, Cgroup: l.Origin.Cgroup}
		if h.Kernel && h.Fields.Cgroup != "" {
			o = headroom.Origin{UID: -1, Cgroup: h.Fields.Cgroup}
		}
		if o.PID == logline.Unknown {
			o.PID = 0
		}
		d.corr.Observe(verdict.Failure{Class: h.Class, Signature: h.Signature, Trust: h.Trust, Who: Who(l),
			Attribution: headroom.Attribute(root, n, d.hs, o)})
	case KindRejected:
		c, err := headroom.DescribeCgroup(root, r.Event.Target.Hierarchy, r.Event.Target.Path)
		if err != nil {
			return // the cgroup is gone
		}
		a := headroom.Attribution{Layer: headroom.LayerCgroup, Limit: "pids.max", Used: c.Current, Max: c.Max.Value, Cgroup: &c, Node: n,
			Reason: fmt.Sprintf("the kernel refused %d forks in cgroup %s (pids.max %s)", r.Event.Rejected, c.Path, c.Max)}
		d.corr.Observe(verdict.Failure{Class: signature.ClassProcess, Trust: logline.TrustKernel, Attribution: a, Refused: r.Event.Rejected})
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
// and every event.
func (d *Detector) evaluate(first bool) {
	d.mu.Lock()
	cond, events := d.corr.Evaluate()
	d.mu.Unlock()
	if first || !d.printed || cond.Status != d.last.Status || cond.Reason != d.last.Reason {
		d.sink.Condition(cond)
		d.printed = true
	}
	d.last = cond
	for _, e := range events {
		d.sink.Event(e)
	}
}
