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

// Healthy reports whether each enabled source is running.
func (s *Sources) Healthy() (journal, kmsg, pidsEvents bool) {
	return s.healthy[srcJournal].Load(), s.healthy[srcKmsg].Load(), s.healthy[srcPidsEvents].Load()
}

func (s *Sources) deliver(r Report) {
	select {
	case s.out <- r:
	default:
		s.stats.Dropped.Add(1)
	}
}

// deliverWait delivers r, waiting while the consumer is behind. The journal
// keeps what it has not been read: its source waits rather than drop a
// line, and reads on when the detector has caught up. (The kernel's ring
// does not wait for a slow reader, so kmsg drops and counts instead.)
func (s *Sources) deliverWait(ctx context.Context, r Report) error {
	select {
	case s.out <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
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

func (s *Sources) runJournal(ctx context.Context, cursor string) error {
	if c := s.journalCursor.Load(); c != nil {
		cursor = *c // a restart of the source resumes where it stopped
	}
	src, err := journal.OpenSource(journal.SourceOptions{Dir: s.cfg.JournalDir, Cursor: cursor, Lazy: true})
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	s.healthy[srcJournal].Store(true)
	defer s.healthy[srcJournal].Store(false)
	if src.Stats().CursorLost {
		s.log.Warn("journal cursor no longer exists (vacuumed); resuming at the nearest entry", "source", "journal")
	}
	if err := src.Stats().Unreadable; err != nil {
		s.log.Warn("some journal files cannot be read; their entries are not seen", "source", "journal", "err", err)
	}
	s.log.Info("source started", "source", "journal", "dir", s.cfg.JournalDir)
	// The exact position is recorded on the way out (this runs before the
	// deferred Close above).
	defer s.recordCursor(src)
	context := func() []string { return src.Context(signature.ContextLines) }
	var lastCursor time.Time
	for {
		l, err := src.Next(ctx)
		if err != nil {
			return err
		}
		s.stats.Lines.Add(1)
		s.per[srcJournal].lines.Add(1)
		// The source read only MESSAGE; the trusted fields are read for the
		// lines that match, and context for the rules that need it.
		if h, ok := s.m.MatchWith(l.Message, context); ok {
			if err := src.Fill(&l); err != nil {
				return err
			}
			// journald copies every /dev/kmsg record into the journal. While
			// the kmsg source runs it is the one path for kernel records, so
			// that none is reported twice; without it the journal's copies count.
			if l.Origin.Transport != "kernel" || !s.healthy[srcKmsg].Load() {
				h.Trust = l.Trust(h.Kernel)
				s.stats.Matches.Add(1)
				if err := s.deliverWait(ctx, Report{Kind: KindMatch, Time: s.clock.Now(), Line: l, Hit: h}); err != nil {
					return err
				}
				// A delivered match is recorded and saved at once, so that a
				// restart, even after a crash, does not report it again.
				s.recordCursor(src)
				s.requestSave()
				continue
			}
		}
		// Other lines are recorded at most once a second: reading the
		// cursor costs a call per entry, and re-reading a few non-matching
		// lines after a crash reports nothing twice.
		if now := s.clock.Now(); now.Sub(lastCursor) >= time.Second {
			s.recordCursor(src)
			lastCursor = now
			if t, err := src.Realtime(); err == nil {
				s.per[srcJournal].lag.Store(int64(now.Sub(t)))
			}
		}
	}
}

func (s *Sources) recordCursor(src *journal.Source) {
	if c, err := src.Cursor(); err == nil {
		s.journalCursor.Store(&c)
	}
}

// requestSave asks the saver to save now; it never blocks.
func (s *Sources) requestSave() {
	select {
	case s.saveNow <- struct{}{}:
	default:
	}
}

func (s *Sources) runKmsg(ctx context.Context, pos state.KmsgPos, fresh bool) error {
	boot, err := kmsg.BootTime(s.cfg.Root, s.clock.Now())
	if err != nil {
		s.log.Warn("boot time unknown; kmsg lines are undated", "source", "kmsg", "err", err)
	}
	start, after := kmsg.StartFor(kmsg.Resume{
		BootID: s.bootID, SavedBootID: pos.BootID, SavedSeq: pos.Seq, Fresh: fresh,
		Reached: s.kmsgSeq.Load(), InRun: s.kmsgOpened.Load(),
	})
	r, err := kmsg.Open(s.cfg.KmsgPath, kmsg.Options{Boot: boot, Start: start, AfterSeq: after})
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	// The position is the reader's from now on, even if it reads nothing:
	// the end of the ring for a first start.
	s.kmsgSeq.Store(r.LastSeq())
	s.kmsgOpened.Store(true)
	s.healthy[srcKmsg].Store(true)
	defer s.healthy[srcKmsg].Store(false)
	o := r.Opened()
	if o.SeqBeyondRing {
		s.log.Warn("saved kmsg position is beyond the end of the ring of this boot; resuming at the end",
			"source", "kmsg", "saved_seq", after, "ring_end", o.End)
	}
	s.log.Info("source started", "source", "kmsg", "path", s.cfg.KmsgPath, "start", o.Start.String(), "seq", r.LastSeq())
	stream := s.m.NewStream()
	for {
		l, err := r.Next(ctx)
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.cfg.KmsgPath, err)
		}
		s.stats.Lines.Add(1)
		p := &s.per[srcKmsg]
		p.lines.Add(1)
		p.overruns.Store(r.Stats().Overruns)
		if !l.Time.IsZero() {
			p.lag.Store(int64(s.clock.Now().Sub(l.Time)))
		}
		s.match(stream, l)
		s.kmsgSeq.Store(r.LastSeq())
	}
}

func (s *Sources) match(stream *signature.Stream, l logline.Line) {
	h, ok := stream.Match(l)
	if !ok {
		return
	}
	s.stats.Matches.Add(1)
	s.deliver(Report{Kind: KindMatch, Time: s.clock.Now(), Line: l, Hit: h})
	s.requestSave()
}

func (s *Sources) runPidsEvents(ctx context.Context, last map[string]uint64, fresh bool) error {
	hs, err := headroom.Hierarchies(s.cfg.Root)
	if err != nil {
		return err
	}
	if prev := s.watcher.Load(); prev != nil {
		last, fresh = prev.Counters(), false // the source restarted within this run
	}
	w, err := pidsevents.New(pidsevents.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	s.setTargets(w, hs, last, fresh)
	s.watcher.Store(w)
	s.healthy[srcPidsEvents].Store(true)
	defer s.healthy[srcPidsEvents].Store(false)
	s.log.Info("source started", "source", "pids.events", "hierarchies", len(hs))
	tick := s.clock.NewTicker(s.cfg.Rediscover)
	defer tick.Stop()
	events := make(chan pidsevents.Event)
	errc := make(chan error, 1)
	go func() {
		for {
			ev, err := w.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			_ = w.Close()
			if err := <-errc; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, pidsevents.ErrClosed) {
				s.log.Debug("pids.events reader ended", "source", "pids.events", "err", err)
			}
			return ctx.Err()
		case err := <-errc:
			return err
		case <-tick.C():
			s.setTargets(w, hs, nil, false) // new cgroups start from zero
		case ev := <-events:
			s.stats.Rejected.Add(ev.Rejected)
			s.per[srcPidsEvents].lines.Add(ev.Rejected)
			s.deliver(Report{Kind: KindRejected, Time: s.clock.Now(), Event: ev})
		}
	}
}

func (s *Sources) setTargets(w *pidsevents.Watcher, hs []headroom.Hierarchy, last map[string]uint64, baseline bool) {
	var targets []pidsevents.Target
	for _, h := range hs {
		found, err := headroom.Discover(s.cfg.Root, h)
		if err != nil {
			s.log.Warn("listing cgroups", "source", "pids.events", "err", err)
		}
		for _, t := range found {
			targets = append(targets, pidsevents.Target{Hierarchy: h, Path: t.Path})
		}
		for _, p := range s.cfg.Cgroups {
			targets = append(targets, pidsevents.Target{Hierarchy: h, Path: p})
		}
	}
	w.Set(targets, last, baseline)
}

func (s *Sources) saveLoop(ctx context.Context, store *state.Store) {
	tick := s.clock.NewTicker(s.cfg.SaveEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			s.save(store)
		case <-s.saveNow:
			s.save(store)
		}
	}
}

func (s *Sources) save(store *state.Store) {
	st := state.State{PidsEvents: map[string]uint64{}}
	if c := s.journalCursor.Load(); c != nil {
		st.Journal.Cursor = *c
	}
	// Until a kmsg reader opens in this run (kmsg off, not permitted, or not
	// yet started) the loaded position stands: saving this boot with seq 0
	// would make the next start replay the whole ring as new.
	st.Kmsg = s.savedKmsg
	if s.kmsgOpened.Load() {
		st.Kmsg = state.KmsgPos{BootID: s.bootID, Seq: s.kmsgSeq.Load()}
	}
	if w := s.watcher.Load(); w != nil {
		st.PidsEvents = w.Counters()
	}
	if s.cfg.Extra != nil {
		st.Verdict = s.cfg.Extra()
	}
	if err := store.Save(st); err != nil {
		s.log.Warn("saving state", "path", store.Path(), "err", fmt.Sprint(err))
	}
}

// RefusedSince returns how many forks the cgroup at path of h refused since
// the pids.events source took its baseline, given its counter now (the
// counter itself before the source runs or for a cgroup it does not watch).
func (s *Sources) RefusedSince(h headroom.Hierarchy, path string, total uint64) uint64 {
	w := s.watcher.Load()
	if w == nil {
		return total
	}
	return w.Since(pidsevents.Target{Hierarchy: h, Path: path}, total)
}
