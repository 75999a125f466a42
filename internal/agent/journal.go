package agent

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/pidpressure/pidpressure/internal/journal"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/state"
)

// deliverWait delivers r, waiting while the consumer is behind. The journal
// keeps what it has not been read: its source waits rather than drop a
// line, and reads on when the detector has caught up. (The kernel's ring
// does not wait for a slow reader, so kmsg drops and counts instead.)
func (s *Supervisor) deliverWait(ctx context.Context, r Report) error {
	select {
	case s.out <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// journalSource follows the systemd journal (internal/journal).
type journalSource struct {
	s      *Supervisor
	saved  string                 // the cursor loaded from the state file
	cursor atomic.Pointer[string] // where the reader stands, once it has read
}

func (j *journalSource) name() string                { return "journal" }
func (j *journalSource) enabled() bool               { return j.s.cfg.Journal }
func (j *journalSource) load(st state.State, _ bool) { j.saved = st.Journal.Cursor }

// position keeps the loaded cursor until the reader stands somewhere:
// saving none would make the next start begin at the tail and skip what
// was written in between.
func (j *journalSource) position(st *state.State) {
	st.Journal.Cursor = j.saved
	if c := j.cursor.Load(); c != nil {
		st.Journal.Cursor = *c
	}
}

func (j *journalSource) run(ctx context.Context, c *sourceCounters) error {
	s := j.s
	cursor := j.saved
	if c := j.cursor.Load(); c != nil {
		cursor = *c // a restart of the source resumes where it stopped
	}
	src, err := journal.OpenLive(journal.LiveOptions{Dir: s.cfg.JournalDir, Cursor: cursor, Lazy: true, Clock: s.clock})
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	c.up.Store(true)
	defer c.up.Store(false)
	if src.Stats().CursorLost {
		s.log.Warn("journal cursor no longer exists (vacuumed); resuming at the nearest entry", "source", "journal")
	}
	if err := src.Stats().Unreadable; err != nil {
		s.log.Warn("some journal files cannot be read; their entries are not seen", "source", "journal", "err", err)
	}
	s.log.Info("source started", "source", "journal", "dir", s.cfg.JournalDir)
	// The exact position is recorded on the way out (this runs before the
	// deferred Close above).
	defer j.recordCursor(src)
	context := func() []string { return src.Context(signature.ContextLines) }
	var lastCursor time.Time
	for {
		l, err := src.Next(ctx)
		if err != nil {
			return err
		}
		s.stats.Lines.Add(1)
		c.lines.Add(1)
		// The source read only MESSAGE; the trusted fields are read for the
		// lines that match, and context for the rules that need it.
		if h, ok := s.m.MatchWith(l.Message, context); ok {
			if err := src.Fill(&l); err != nil {
				return err
			}
			// journald copies every /dev/kmsg record into the journal. While
			// the kmsg source runs it is the one path for kernel records, so
			// that none is reported twice; without it the journal's copies count.
			if l.Origin.Transport != "kernel" || !s.up(kmsgName) {
				h.Trust = l.Trust(h.Kernel)
				s.stats.Matches.Add(1)
				if err := s.deliverWait(ctx, Report{Kind: KindMatch, Time: s.clock.Now(), Line: l, Hit: h}); err != nil {
					return err
				}
				// A delivered match is recorded and saved at once, so that a
				// restart, even after a crash, does not report it again.
				j.recordCursor(src)
				s.requestSave()
				continue
			}
		}
		// Other lines are recorded at most once a second: reading the
		// cursor costs a call per entry, and re-reading a few non-matching
		// lines after a crash reports nothing twice.
		if now := s.clock.Now(); now.Sub(lastCursor) >= time.Second {
			j.recordCursor(src)
			lastCursor = now
			if t, err := src.Realtime(); err == nil {
				c.lag.Store(int64(now.Sub(t)))
			}
		}
	}
}

func (j *journalSource) recordCursor(src *journal.LiveReader) {
	if c, err := src.Cursor(); err == nil {
		j.cursor.Store(&c)
	}
}
