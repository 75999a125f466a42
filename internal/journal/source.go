package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/utils/clock"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// what names the journal in a hostfs.NotSupportedError: OpenLive's error
// matches hostfs.ErrNotSupported when the journal cannot be read here (no
// libsystemd or a build without cgo, no journal directory, or journal files
// of which not one may be read by this process).
const what = "journal"

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("journal reader closed")

// LiveOptions configure a journal LiveReader.
type LiveOptions struct {
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
	// Clock paces those retries (default the real clock): the agent's own,
	// so that its one supervisor and this reader back off on one clock.
	Clock clock.Clock
}

// LiveStats count what a LiveReader skipped or retried.
type LiveStats struct {
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
	// Unreadable, when some journal files could be read at Open and others
	// not, is why the first of the others could not (their entries are not
	// seen); nil otherwise.
	Unreadable error
}

// systemJournalDirs are where sd_journal_open looks for the system journal
// (built into libsystemd, in this mount namespace: not under a host root).
func systemJournalDirs() []string { return []string{"/run/log/journal", "/var/log/journal"} }

// unreadableError says that not one journal file could be read.
func unreadableError(dirs []string, err error) error {
	hint := ""
	if errors.Is(err, fs.ErrPermission) {
		hint = " (reading the journal takes root, or membership in the systemd-journal or adm group)"
	}
	return hostfs.NotSupported(what, fmt.Errorf("no journal file in %s can be read: %w%s", strings.Join(dirs, " or "), err, hint))
}

// scanReadable tries to open, for reading, each journal file where
// sd_journal looks: in each directory and in its machine-ID
// subdirectories. It returns how many could be opened and why the first
// file or directory that could not be read failed (nil if none failed).
// A missing directory is not a failure.
//
// libsystemd passes over a journal file or directory it may not read
// without an error (journalctl says "No journal files were opened due to
// insufficient permissions"; the library API does not), so a process
// without the right would otherwise follow nothing and look healthy.
func scanReadable(dirs []string) (readable int, firstErr error) {
	for _, d := range dirs {
		n, err := scanDir(d, true)
		readable += n
		if firstErr == nil {
			firstErr = err
		}
	}
	return readable, firstErr
}

func scanDir(dir string, root bool) (readable int, firstErr error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (!root && errors.Is(err, syscall.ENOTDIR)) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		name := e.Name()
		var n int
		var err error
		switch {
		case strings.HasSuffix(name, ".journal") || strings.HasSuffix(name, ".journal~"):
			f, oerr := os.Open(filepath.Join(dir, name))
			if oerr == nil {
				_ = f.Close() // read-only
				n = 1
			}
			err = oerr
		case root && isMachineID(name):
			n, err = scanDir(filepath.Join(dir, name), false)
		}
		readable += n
		if firstErr == nil {
			firstErr = err
		}
	}
	return readable, firstErr
}

// isMachineID reports whether name is a 128-bit ID as sd_id128_from_string
// takes it: 32 hex digits, or the UUID form with dashes.
func isMachineID(name string) bool {
	if len(name) == 36 {
		if name[8] != '-' || name[13] != '-' || name[18] != '-' || name[23] != '-' {
			return false
		}
		name = strings.ReplaceAll(name, "-", "")
	}
	if len(name) != 32 {
		return false
	}
	for _, c := range name {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
