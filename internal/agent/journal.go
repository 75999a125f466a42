package agent

import (
	"context"
	"time"

	"github.com/pidpressure/pidpressure/internal/journal"
	"github.com/pidpressure/pidpressure/internal/signature"
)

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
