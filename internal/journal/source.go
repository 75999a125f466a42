package journal

import (
	"errors"
	"time"
)

// ErrNotSupported is returned by Open when the journal cannot be read here:
// no libsystemd (or a build without cgo), or no journal files.
var ErrNotSupported = errors.New("journal not supported")

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("journal reader closed")

// SourceOptions configure a journal Source.
type SourceOptions struct {
	// Dir reads the journal files of one directory (--journal-dir) instead
	// of the system journal.
	Dir string
	// Cursor resumes after this entry; empty starts at the tail (only
	// entries written after Open are read).
	Cursor string
	// Head reads the whole journal from its first entry (ignored with Cursor).
	Head bool
	// Lazy makes Next read only MESSAGE and the time: every other field
	// costs a scan of the entry (sd_journal_get_data), so a consumer that
	// needs them only for the rare lines that match calls Fill for those.
	Lazy bool
	// Poll bounds one wait for new entries before Next checks its context
	// and Close (default 250ms).
	Poll time.Duration
	// MaxBackoff caps the wait between retries after a read error
	// (default 30s; the first retry waits 100ms and each doubles).
	MaxBackoff time.Duration
}

// SourceStats count what a Source skipped or retried.
type SourceStats struct {
	// ReadErrors is the number of failed reads (each followed by a backoff).
	ReadErrors uint64
	// Entries is the number of entries returned.
	Entries uint64
	// Invalidations counts journal files appearing or disappearing
	// (rotation, vacuuming) while following.
	Invalidations uint64
	// CursorLost is true when the resume cursor no longer existed (the
	// journal was vacuumed past it) and reading restarted at the nearest entry.
	CursorLost bool
}
