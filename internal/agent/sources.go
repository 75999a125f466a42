package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/journal"
	"github.com/pidpressure/pidpressure/internal/kmsg"
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
	// Extra, when set, is saved with the read positions (the verdict). It is
	// called from the saver's goroutine and must be safe for that.
	Extra func() json.RawMessage
}

// Kind says what a report is.
type Kind string

// The report kinds.
const (
	// KindMatch is a log line that matched a signature.
	KindMatch Kind = "match"
	// KindRejected is an increase of a cgroup's refused-fork counter.
	KindRejected Kind = "rejected"
)

// Report is one thing the sources saw.
type Report struct {
	Kind Kind
	Time time.Time
	// Line and Hit are set for KindMatch.
	Line logline.Line
	Hit  signature.Hit
	// Event is set for KindRejected.
	Event pidsevents.Event
}

// Stats count the sources' work.
type Stats struct {
	Lines, Matches, Rejected, Dropped atomic.Uint64
}

// Sources runs the live sources.
type Sources struct {
	cfg     Config
	m       *signature.Matcher
	clock   clock.WithTicker
	log     *slog.Logger
	out     chan Report
	stats   Stats
	healthy [3]atomic.Bool // journal, kmsg, pids.events
	per     [3]sourceCounters

	// positions, updated by the sources, read by the saver
	journalCursor atomic.Pointer[string]
	kmsgSeq       atomic.Uint64 // valid once kmsgOpened
	kmsgOpened    atomic.Bool   // a kmsg reader stood somewhere in this run
	savedKmsg     state.KmsgPos // as loaded; kept while no reader opened
	bootID        string        // read once in Run, before the sources start
	watcher       atomic.Pointer[pidsevents.Watcher]
	saveNow       chan struct{}
}

type sourceCounters struct {
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

// SourceStats returns every source's state.
func (s *Sources) SourceStats() []SourceStat {
	enabled := [3]bool{s.cfg.Journal, s.cfg.KmsgPath != "", s.cfg.PidsEvents}
	out := make([]SourceStat, 3)
	for i := range out {
		p := &s.per[i]
		out[i] = SourceStat{Name: sourceNames[i], Enabled: enabled[i], Up: s.healthy[i].Load(),
			Lines: p.lines.Load(), Overruns: p.overruns.Load(), Lag: time.Duration(p.lag.Load()), Unsupported: p.unsupported.Load()}
		if e := p.lastErr.Load(); e != nil {
			out[i].Err = *e
		}
	}
	return out
}

// sourceNames are the sources' names, by health index.
var sourceNames = [3]string{"journal", "kmsg", "pids.events"} //nolint:gochecknoglobals // a constant table

// Health indexes.
const (
	srcJournal = iota
	srcKmsg
	srcPidsEvents
)

// NewSources returns the sources; nothing is opened until Run.
func NewSources(cfg Config, m *signature.Matcher, clk clock.WithTicker, log *slog.Logger) *Sources {
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = 5 * time.Second
	}
	if cfg.Rediscover <= 0 {
		cfg.Rediscover = 30 * time.Second
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	return &Sources{cfg: cfg, m: m, clock: clk, log: log, out: make(chan Report, cfg.Buffer), saveNow: make(chan struct{}, 1)}
}

// Reports is where the sources deliver. When the consumer falls behind,
// reports are dropped and counted, never queued without bound.
func (s *Sources) Reports() <-chan Report { return s.out }

// Stats returns the counters.
func (s *Sources) Stats() *Stats { return &s.stats }

func (s *Sources) deliver(r Report) {
	select {
	case s.out <- r:
	default:
		s.stats.Dropped.Add(1)
	}
}

// Run starts every enabled source and blocks until ctx is done. A source
// that is not supported here is logged and left off; one that fails is
// restarted with capped backoff. It returns nil when ctx is cancelled.
func (s *Sources) Run(ctx context.Context) error {
	var store *state.Store
	st := state.State{PidsEvents: map[string]uint64{}}
	fresh := true
	if s.cfg.StateDir != "" {
		store = state.NewStore(s.cfg.StateDir)
		loaded, err := store.Load()
		switch {
		case errors.Is(err, state.ErrCorrupt):
			s.log.Warn("state file corrupt, starting afresh", "path", store.Path(), "err", err)
		case err != nil:
			s.log.Warn("state file unreadable, starting afresh", "path", store.Path(), "err", err)
		default:
			st = loaded
			fresh = st.Journal.Cursor == "" && st.Kmsg.BootID == "" && len(st.PidsEvents) == 0
		}
	}
	if s.cfg.KmsgPath != "" {
		id, err := kmsg.BootID(s.cfg.Root)
		if err != nil {
			s.log.Warn("boot ID unknown; kmsg starts at the end", "source", "kmsg", "err", err)
		}
		s.bootID = id
	}
	s.savedKmsg = st.Kmsg
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	if s.cfg.Journal {
		g.Go(func() error {
			s.supervise(ctx, srcJournal, func(ctx context.Context) error { return s.runJournal(ctx, st.Journal.Cursor) })
			return nil
		})
	}
	if s.cfg.KmsgPath != "" {
		g.Go(func() error {
			s.supervise(ctx, srcKmsg, func(ctx context.Context) error { return s.runKmsg(ctx, st.Kmsg, fresh) })
			return nil
		})
	}
	if s.cfg.PidsEvents {
		g.Go(func() error {
			s.supervise(ctx, srcPidsEvents, func(ctx context.Context) error { return s.runPidsEvents(ctx, st.PidsEvents, fresh) })
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
func (s *Sources) supervise(ctx context.Context, idx int, run func(context.Context) error) {
	name := sourceNames[idx]
	backoff := time.Second
	for ctx.Err() == nil {
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		msg := fmt.Sprint(err)
		s.per[idx].lastErr.Store(&msg)
		if errors.Is(err, journal.ErrNotSupported) || errors.Is(err, kmsg.ErrNotSupported) || errors.Is(err, headroom.ErrNotSupported) {
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
