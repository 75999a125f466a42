// Package state keeps the agent's read positions and counters in one small
// file, so that a restart neither loses nor repeats what it reported: the
// journal cursor, the kmsg boot ID and sequence number, and the pids.events
// counters of each cgroup.
//
// The file is written atomically (write a temporary file, fsync, rename over
// the old one, fsync the directory) and read defensively: a missing file is
// an empty state, and a corrupt or truncated one is reported with
// ErrCorrupt together with an empty state, to be replaced by the next Save.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FileName is the state file's name in the state directory.
const FileName = "pidpressure-state.json"

// version is the format version written by this code.
const version = 1

// maxSize bounds the state file; a larger one is corrupt.
const maxSize = 4 << 20

// ErrCorrupt is returned by Load for a state file that cannot be parsed.
var ErrCorrupt = errors.New("corrupt state file")

// State is what survives a restart.
type State struct {
	Version int `json:"version"`
	// Journal is the cursor of the last journal entry handled.
	Journal JournalPos `json:"journal"`
	// Kmsg is the last kmsg record handled, in a given boot.
	Kmsg KmsgPos `json:"kmsg"`
	// PidsEvents maps a cgroup ("v2:/kubepods.slice/…") to the last "max"
	// count of its pids.events seen.
	PidsEvents map[string]uint64 `json:"pidsEvents,omitempty"`
	// Verdict is the condition and event aggregation of the correlator,
	// opaque to this package.
	Verdict json.RawMessage `json:"verdict,omitempty"`
}

// JournalPos is a position in the journal.
type JournalPos struct {
	Cursor string `json:"cursor,omitempty"`
}

// KmsgPos is a position in the kernel log of one boot: Seq is the sequence
// number of the last record handled or, when the reader handled none, of
// the last record in the ring when it started (so that a quiet run does not
// make the next one replay the ring).
type KmsgPos struct {
	BootID string `json:"bootID,omitempty"`
	Seq    uint64 `json:"seq"`
}

// Store reads and writes the state file in a directory.
type Store struct {
	path string
}

// NewStore returns the store for dir; nothing is read or written yet.
func NewStore(dir string) *Store { return &Store{path: filepath.Join(dir, FileName)} }

// Path returns the state file's path.
func (s *Store) Path() string { return s.path }

// Load reads the state. A missing file gives an empty state and no error; a
// corrupt one gives an empty state and an error wrapping ErrCorrupt.
func (s *Store) Load() (State, error) {
	empty := State{Version: version, PidsEvents: map[string]uint64{}}
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return empty, err
	}
	defer func() { _ = f.Close() }() // read-only
	var st State
	dec := json.NewDecoder(&limitedReader{f: f, n: maxSize})
	if err := dec.Decode(&st); err != nil {
		return empty, fmt.Errorf("%w %s: %w", ErrCorrupt, s.path, err)
	}
	if st.Version != version {
		return empty, fmt.Errorf("%w %s: version %d, want %d", ErrCorrupt, s.path, st.Version, version)
	}
	if st.PidsEvents == nil {
		st.PidsEvents = map[string]uint64{}
	}
	return st, nil
}

// Save writes the state atomically.
func (s *Store) Save(st State) error {
	st.Version = version
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, FileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after a successful rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("saving state: syncing %s: %w", dir, err)
	}
	return nil
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("state file over %d bytes", maxSize)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}
