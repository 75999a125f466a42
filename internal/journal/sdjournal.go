//go:build cgo

package journal

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"
	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
)

// LiveReader follows the systemd journal through libsystemd (loaded at run
// time). Per entry it reads only the fields a line needs, with
// sd_journal_get_data, never the whole entry. Next and Close may be called
// from different goroutines.
type LiveReader struct {
	opt LiveOptions
	// mu guards the journal's lifetime: every call holds it shared (a wait
	// for at most Poll), Close holds it exclusively before freeing.
	mu     sync.RWMutex
	j      *sdjournal.Journal
	closed atomic.Bool
	// cursor is the current entry's cursor when Fill has read it ("" when
	// it has not): the caller records it for every matched line.
	cursor atomic.Pointer[string]
	// ids are the trusted fields last read for each process (Fill), by
	// _PID; only Fill uses them, from the reading goroutine.
	ids   map[string]identity
	stats struct {
		readErrors, entries, invalidations atomic.Uint64
		cursorLost                         atomic.Bool
		unreadable                         atomic.Pointer[error]
	}
}

var _ logline.Reader = (*LiveReader)(nil)

// OpenLive opens the journal. It returns an error matching hostfs.ErrNotSupported
// when libsystemd cannot be loaded, there is no journal directory, or there
// are journal files but this process may read none of them (the error names
// the directory and the file or directory refused, and why).
func OpenLive(opt LiveOptions) (*LiveReader, error) {
	if opt.Poll <= 0 {
		opt.Poll = 250 * time.Millisecond
	}
	if opt.Clock == nil {
		opt.Clock = clock.RealClock{}
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 30 * time.Second
	}
	var j *sdjournal.Journal
	var err error
	if opt.Dir != "" {
		j, err = sdjournal.NewJournalFromDir(opt.Dir)
	} else {
		j, err = sdjournal.NewJournal()
	}
	if err != nil {
		return nil, hostfs.NotSupported(what, err)
	}
	s := &LiveReader{opt: opt, j: j}
	// libsystemd opens what it may and passes over the rest in silence:
	// with no file open (usage 0) because none may be read, following it
	// would read nothing, for good (a process's groups do not change while
	// it runs), so that is "not supported here", like a /dev/kmsg that may
	// not be read. No file at all is not: journald may not have written
	// one yet, and libsystemd picks new files up.
	dirs := systemJournalDirs()
	if opt.Dir != "" {
		dirs = []string{opt.Dir}
	}
	readable, scanErr := scanReadable(dirs)
	if usage, uerr := j.GetUsage(); scanErr != nil && readable == 0 && (uerr != nil || usage == 0) {
		_ = j.Close()
		return nil, unreadableError(dirs, scanErr)
	}
	if readable > 0 && scanErr != nil {
		s.stats.unreadable.Store(&scanErr)
	}
	if err := s.seek(); err != nil {
		_ = j.Close()
		return nil, err
	}
	return s, nil
}

// seek positions the journal on the last entry already handled, so that the
// next sd_journal_next returns the first new one.
func (s *LiveReader) seek() error {
	if c := s.opt.Cursor; c != "" {
		if err := s.j.SeekCursor(c); err == nil {
			if _, err := s.j.Next(); err != nil {
				return fmt.Errorf("moving to the resume cursor: %w", err)
			}
			if s.j.TestCursor(c) == nil {
				return nil // on the handled entry: Next moves past it
			}
			// Vacuumed away: we stand on the nearest later entry, which is
			// unread. Step back so that Next returns it.
			s.stats.cursorLost.Store(true)
			_, _ = s.j.Previous()
			return nil
		}
		s.stats.cursorLost.Store(true)
	}
	if s.opt.Head {
		if err := s.j.SeekHead(); err != nil {
			return fmt.Errorf("seeking to the journal's head: %w", err)
		}
		return nil
	}
	if err := s.j.SeekTail(); err != nil {
		return fmt.Errorf("seeking to the journal's tail: %w", err)
	}
	// After sd_journal_seek_tail the read pointer is past the end; step onto
	// the last entry so that Next returns only entries written from now on.
	if _, err := s.j.Previous(); err != nil {
		return fmt.Errorf("seeking to the journal's tail: %w", err)
	}
	return nil
}

// Next returns the next journal entry as a line, waiting for one to be
// written. Read errors are retried with capped exponential backoff; Next
// returns only for an entry, a done context, or Close.
func (s *LiveReader) Next(ctx context.Context) (logline.Line, error) {
	backoff := 100 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return logline.Line{}, err
		}
		if s.closed.Load() {
			return logline.Line{}, ErrClosed
		}
		l, ok, err := s.next()
		switch {
		case err != nil:
			s.stats.readErrors.Add(1)
			if werr := s.sleep(ctx, backoff); werr != nil {
				return logline.Line{}, werr
			}
			backoff = min(2*backoff, s.opt.MaxBackoff)
		case ok:
			s.stats.entries.Add(1)
			return l, nil
		default:
			backoff = 100 * time.Millisecond
			if err := s.wait(); err != nil {
				return logline.Line{}, err
			}
		}
	}
}

// next reads one entry if there is one.
func (s *LiveReader) next() (logline.Line, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return logline.Line{}, false, ErrClosed
	}
	n, err := s.j.Next()
	if err != nil || n == 0 {
		return logline.Line{}, false, err
	}
	s.cursor.Store(nil)
	if s.opt.Lazy {
		// Only the message: Fill reads the rest for the lines that need it.
		// GetData returns "MESSAGE=…"; slicing the prefix off spares the
		// split (and its allocation) that GetDataValue makes.
		data, err := s.j.GetData(FieldMessage)
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return logline.Line{}, false, fmt.Errorf("reading %s: %w", FieldMessage, err)
		}
		return logline.New(logline.SourceJournal, strings.TrimPrefix(data, FieldMessage+"=")), true, nil
	}
	e, err := s.read(Fields())
	if err != nil {
		return logline.Line{}, false, err
	}
	if us, err := s.j.GetRealtimeUsec(); err == nil {
		e[FieldRealtime] = strconv.FormatUint(us, 10)
	}
	return Translate(e), true, nil
}

// read reads fields of the current entry; absent ones are left out.
func (s *LiveReader) read(fields []string) (Entry, error) {
	e := make(Entry, len(fields)+1)
	for _, f := range fields {
		if f == FieldRealtime {
			continue
		}
		v, err := s.j.GetDataValue(f)
		if err != nil {
			if errors.Is(err, syscall.ENOENT) {
				continue // the entry lacks the field
			}
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		e[f] = v
	}
	return e, nil
}

// Fill reads the rest of the fields of the entry Next returned last into l
// (for a Lazy source). It must be called before the next Next.
func (s *LiveReader) Fill(l *logline.Line) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	us, err := s.j.GetRealtimeUsec()
	if err != nil {
		return fmt.Errorf("reading the entry's time: %w", err)
	}
	// In a storm one process writes thousands of lines a second. Its
	// trusted fields are read whole once and serve its next lines for
	// identityTTL (journald itself refreshes a client's metadata at most
	// once a second, journald-context.c): two fields a line instead of the
	// whole entry. Kernel records are always read whole.
	pid, perr := s.j.GetDataValue(FieldPID)
	transport, terr := s.j.GetDataValue(FieldTransport)
	if perr == nil && terr == nil && transport != "kernel" {
		if id, ok := s.ids[pid]; ok && us >= id.realtime && us-id.realtime <= uint64(identityTTL/time.Microsecond) {
			e := make(Entry, len(id.fields)+4)
			maps.Copy(e, id.fields)
			e[FieldMessage], e[FieldPID], e[FieldTransport] = l.Message, pid, transport
			e[FieldRealtime] = strconv.FormatUint(us, 10)
			*l = Translate(e)
			return nil
		}
	}
	// One pass over the entry's fields: sd_journal_get_data looks a field
	// up by walking the entry's fields, so reading the dozen a line needs
	// one by one walks them a dozen times.
	je, err := s.j.GetEntry()
	if err != nil {
		return fmt.Errorf("reading the entry: %w", err)
	}
	e := make(Entry, len(Fields()))
	for _, f := range Fields() {
		if v, ok := je.Fields[f]; ok {
			e[f] = v
		}
	}
	e[FieldRealtime] = strconv.FormatUint(je.RealtimeTimestamp, 10)
	s.cursor.Store(&je.Cursor)
	if perr == nil && terr == nil && transport != "kernel" {
		s.remember(pid, e, je.RealtimeTimestamp)
	}
	*l = Translate(e)
	return nil
}

// contextScan bounds how far back Context looks.
const contextScan = 64

// Context returns up to k messages that the process of the current entry
// (same _PID) wrote just before it, oldest first, looking back at most 64
// entries, and leaves the journal where it was. It costs a few reads per
// entry stepped over, so it is meant for the rare line whose meaning
// depends on the lines before it.
func (s *LiveReader) Context(k int) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return nil
	}
	pid, err := s.j.GetDataValue(FieldPID)
	if err != nil {
		return nil
	}
	var out []string
	steps := uint64(0)
	for steps < contextScan && len(out) < k {
		n, err := s.j.Previous()
		if err != nil || n == 0 {
			break
		}
		steps++
		if p, err := s.j.GetDataValue(FieldPID); err == nil && p == pid {
			if m, err := s.j.GetDataValue(FieldMessage); err == nil {
				out = append(out, m)
			}
		}
	}
	if steps > 0 {
		_, _ = s.j.NextSkip(steps) // back to the current entry
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// wait blocks up to Poll for the journal to change.
func (s *LiveReader) wait() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	r := s.j.Wait(s.opt.Poll)
	if r == sdjournal.SD_JOURNAL_INVALIDATE {
		s.stats.invalidations.Add(1)
	}
	return nil
}

func (s *LiveReader) sleep(ctx context.Context, d time.Duration) error {
	t := s.opt.Clock.NewTimer(d) // backoff between retries of a failing read
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// Cursor returns the cursor of the last entry returned, to persist.
func (s *LiveReader) Cursor() (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return "", ErrClosed
	}
	if c := s.cursor.Load(); c != nil {
		return *c, nil
	}
	return s.j.GetCursor()
}

// Realtime returns when the last entry returned was written.
func (s *LiveReader) Realtime() (time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return time.Time{}, ErrClosed
	}
	us, err := s.j.GetRealtimeUsec()
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(int64(us)), nil //nolint:gosec // microseconds since 1970 fit an int64 until the year 294247
}

// Stats returns the counters.
func (s *LiveReader) Stats() LiveStats {
	st := LiveStats{
		ReadErrors:    s.stats.readErrors.Load(),
		Entries:       s.stats.entries.Load(),
		Invalidations: s.stats.invalidations.Load(),
		CursorLost:    s.stats.cursorLost.Load(),
	}
	if e := s.stats.unreadable.Load(); e != nil {
		st.Unreadable = *e
	}
	return st
}

// Close closes the journal; a Next waiting returns ErrClosed within Poll.
func (s *LiveReader) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	// Waits in progress (at most Poll) finish before the journal is freed.
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.j.Close()
}
