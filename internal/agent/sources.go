package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/pidsevents"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/state"
)

// Config configures the live sources.
type Config struct {
	// Root is the host's /proc, /sys and /var.
	Root hostfs.Root
	// KmsgPath is the kernel log device ("" disables kmsg).
	KmsgPath string
	// Journal enables the journal source; JournalDir reads one directory
	// instead of the system journal.
	Journal    bool
	JournalDir string
	// PidsEvents enables the pids.events watcher.
	PidsEvents bool
	// EBPF is the eBPF counter's mode: EBPFAuto, EBPFOn, or EBPFOff ("").
	EBPF string
	// Cgroups are extra cgroups (paths as in /proc/PID/cgroup) to watch.
	Cgroups []string
	// StateDir holds the state file ("" keeps no state).
	StateDir string
	// SaveEvery is how often read positions are saved (default 5s).
	SaveEvery time.Duration
	// Rediscover is how often the watched cgroups are listed again (default 30s).
	Rediscover time.Duration
	// Buffer bounds the reports waiting for the consumer (default 1024).
	Buffer int
}

// Kind says what a report is.
type Kind string

// The report kinds.
const (
	// KindMatch is a log line that matched a signature.
	KindMatch Kind = "match"
	// KindRefused is an increase of a cgroup's refused-fork counter.
	KindRefused Kind = "rejected"
	// KindCounted is a count of creations the kernel refused, from the
	// eBPF counter.
	KindCounted Kind = "counted"
)

// Report is one thing the sources saw.
type Report struct {
	Kind Kind
	Time time.Time
	// Line and Hit are set for KindMatch.
	Line logline.Line
	Hit  signature.Hit
	// Refusal is set for KindRefused.
	Refusal pidsevents.Refusal
	// Counted is set for KindCounted.
	Counted Counted
}

// Stats count the sources' work.
type Stats struct {
	Lines, Matches, Refused, Counted, Dropped atomic.Uint64
}

// source is one live source: something that yields lines or refusals.
// Each lives in a file of its own (journal.go, kmsg.go, pidsevents.go,
// ebpf.go) and
// is wired by one line in NewSupervisor; the Supervisor runs them all under one
// supervisor and saves their positions in one state file.
type source interface {
	// name names the source in logs, metrics and /healthz.
	name() string
	// enabled reports whether the configuration turns it on.
	enabled() bool
	// load takes the saved state before any source runs; fresh says that
	// nothing was saved (a first start).
	load(st state.State, fresh bool)
	// run reads until ctx is done or it fails, counting in c; a run after
	// a failure resumes where the last one stood.
	run(ctx context.Context, c *sourceCounters) error
	// position writes where the source stands into st, to be saved.
	position(st *state.State)
}

// Supervisor runs the live sources.
type Supervisor struct {
	cfg     Config
	m       *signature.Matcher
	clock   clock.WithTicker
	log     *slog.Logger
	out     chan Report
	stats   Stats
	list    []source
	per     []sourceCounters // by index in list
	saveNow chan struct{}
	// keep owns the state file (the detector's, or one of Run's own).
	keep *keeper
	// hs are the cgroup hierarchies with the pids controller, discovered
	// once (by the detector, or by Run); hsErr is why there are none.
	hs    []headroom.Hierarchy
	hsErr error
}

// sourceCounters are one source's health and counts.
type sourceCounters struct {
	up              atomic.Bool
	lines, overruns atomic.Uint64
	lag             atomic.Int64 // nanoseconds
	unsupported     atomic.Bool
	lastErr         atomic.Pointer[string]
}

// SourceStat describes one source for metrics and health.
type SourceStat struct {
	Name    string
	Enabled bool
	// Up is true while the source runs.
	Up bool
	// Lines read (journal, kmsg) or refusals seen (pids.events).
	Lines uint64
	// Overruns: kmsg records overwritten before they were read.
	Overruns uint64
	// Lag is how old the last record was when it was read (journal: sampled
	// once a second; kmsg: every record). Zero for pids.events.
	Lag time.Duration
	// Unsupported: the host does not have it; it was left off for good.
	Unsupported bool
	// Err is why it last stopped ("" if it never did).
	Err string
}

// SourceStats returns every source's state, in the order of the list.
func (s *Supervisor) SourceStats() []SourceStat {
	out := make([]SourceStat, len(s.list))
	for i, src := range s.list {
		p := &s.per[i]
		out[i] = SourceStat{Name: src.name(), Enabled: src.enabled(), Up: p.up.Load(),
			Lines: p.lines.Load(), Overruns: p.overruns.Load(), Lag: time.Duration(p.lag.Load()), Unsupported: p.unsupported.Load()}
		if e := p.lastErr.Load(); e != nil {
			out[i].Err = *e
		}
	}
	return out
}

// up reports whether the source named name is running.
func (s *Supervisor) up(name string) bool {
	for i, src := range s.list {
		if src.name() == name {
			return s.per[i].up.Load()
		}
	}
	return false
}

// NewSupervisor returns the sources; nothing is opened until Run.
func NewSupervisor(cfg Config, m *signature.Matcher, clk clock.WithTicker, log *slog.Logger) *Supervisor {
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = 5 * time.Second
	}
	if cfg.Rediscover <= 0 {
		cfg.Rediscover = 30 * time.Second
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	s := &Supervisor{cfg: cfg, m: m, clock: clk, log: log, out: make(chan Report, cfg.Buffer), saveNow: make(chan struct{}, 1)}
	// The sources, one line each.
	s.list = []source{
		&journalSource{s: s},
		&kmsgSource{s: s},
		&pidsEventsSource{s: s},
		&ebpfSource{s: s},
	}
	s.per = make([]sourceCounters, len(s.list))
	return s
}

// useHierarchies keeps the cgroup hierarchies (and why there are none) for
// every source: discovered once, by the detector or by Run.
func (s *Supervisor) useHierarchies(hs []headroom.Hierarchy, err error) {
	s.hs, s.hsErr = hs, err
	if s.hs == nil {
		s.hs = []headroom.Hierarchy{} // discovered, and none
	}
}

// hierarchies are the cgroup hierarchies with the pids controller, or why
// there are none (an error matching hostfs.ErrNotSupported).
func (s *Supervisor) hierarchies() ([]headroom.Hierarchy, error) {
	if len(s.hs) == 0 && s.hsErr != nil {
		return nil, s.hsErr
	}
	return s.hs, nil
}

// Reports is where the sources deliver. When the consumer falls behind,
// reports are dropped and counted, never queued without bound.
func (s *Supervisor) Reports() <-chan Report { return s.out }

// Stats returns the counters.
func (s *Supervisor) Stats() *Stats { return &s.stats }

func (s *Supervisor) deliver(r Report) {
	select {
	case s.out <- r:
	default:
		s.stats.Dropped.Add(1)
	}
}

// Run starts every enabled source and blocks until ctx is done. A source
// that is not supported here is logged and left off; one that fails is
// restarted with capped backoff. It returns nil when ctx is cancelled.
func (s *Supervisor) Run(ctx context.Context) error {
	if s.keep == nil { // run alone (tail): the state is loaded here, once
		s.keep = loadState(s.cfg.StateDir, s.log)
	}
	if s.hs == nil {
		s.useHierarchies(headroom.Hierarchies(s.cfg.Root))
	}
	store := s.keep.store
	for _, src := range s.list {
		src.load(s.keep.st, s.keep.fresh)
	}
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	for i, src := range s.list {
		if !src.enabled() {
			continue
		}
		g.Go(func() error {
			s.supervise(ctx, i, func(ctx context.Context) error { return src.run(ctx, &s.per[i]) })
			return nil
		})
	}
	if store != nil {
		g.Go(func() error { s.saveLoop(ctx, store); return nil })
	}
	err := g.Wait()
	if err == nil {
		// No source runs (none enabled, or none supported here). Run still
		// lasts until ctx is done: the detector samples the node headroom
		// without any source, as NPD keeps running with no log monitor.
		<-parent.Done()
	}
	if store != nil {
		s.save(store) // the final positions
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// supervise runs a source until ctx is done, restarting it with capped
// exponential backoff when it fails, and giving up on one that is not
// supported on this host. It returns when ctx is done, even after giving
// up: Run blocks until then, so that a host where no source can be read
// (a user without the right to any) still has its headroom sampled,
// rather than the detector stopping at once.
func (s *Supervisor) supervise(ctx context.Context, idx int, run func(context.Context) error) {
	name := s.list[idx].name()
	backoff := time.Second
	for ctx.Err() == nil {
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		msg := fmt.Sprint(err)
		s.per[idx].lastErr.Store(&msg)
		if errors.Is(err, hostfs.ErrNotSupported) {
			s.per[idx].unsupported.Store(true)
			s.log.Warn("source not supported here; the others carry on", "source", name, "err", err)
			<-ctx.Done()
			return
		}
		s.log.Warn("source stopped, restarting", "source", name, "err", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}
