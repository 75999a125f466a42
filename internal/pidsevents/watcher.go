// Package pidsevents watches the pids.events files of cgroups and reports
// every increase of their "max" counter: forks the kernel refused because a
// pids.max was reached. This is kernel truth — unforgeable, and the only
// signal after the kernel's one-time "fork rejected by pids controller" log
// line per cgroup (Documentation/admin-guide/cgroup-v2.rst, pids.events).
//
// cgroup v2 emits a file-modified notification on pids.events when it
// changes, which the watcher receives through inotify; v1 does not, so a
// cheap poll of every watched file runs as well.
package pidsevents

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("pids.events watcher closed")

// Target is a cgroup to watch.
type Target struct {
	Hierarchy headroom.Hierarchy
	Path      string
}

// Key names a target in persisted state: "v2:/kubepods.slice/…".
func (t Target) Key() string {
	return fmt.Sprintf("v%d:%s", t.Hierarchy.Version, path.Clean("/"+t.Path))
}

func (t Target) file() string {
	return filepath.Join(t.Hierarchy.Dir, filepath.FromSlash(path.Clean("/"+t.Path)), "pids.events")
}

// Refusal is an increase of a cgroup's refused-fork counter: forks the
// kernel refused at its pids.max.
type Refusal struct {
	Target Target
	// Refused is how many forks were refused since the last event (or the
	// persisted count).
	Refused uint64
	// Total is the counter now.
	Total uint64
}

// Options configure a Watcher.
type Options struct {
	// Poll is the interval of the safety-net poll (default 2s).
	Poll time.Duration
}

// Watcher reports refused forks of a set of cgroups. Next and Close may be
// called from different goroutines.
type Watcher struct {
	opt     Options
	mu      sync.Mutex
	targets map[string]Target
	last    map[string]uint64
	base    map[string]uint64 // the counter when the target was first set
	pending []Refusal
	ino     *os.File
	wd      map[string]int // key → inotify watch descriptor
	closed  bool
}

// New returns a watcher of no cgroups; Set gives it its targets. It opens an
// inotify descriptor and starts no goroutine.
func New(opt Options) (*Watcher, error) {
	if opt.Poll <= 0 {
		opt.Poll = 2 * time.Second
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	return &Watcher{
		opt:     opt,
		targets: map[string]Target{},
		last:    map[string]uint64{},
		base:    map[string]uint64{},
		wd:      map[string]int{},
		ino:     os.NewFile(uintptr(fd), "inotify"),
	}, nil
}

// Set replaces the watched cgroups. last gives persisted counters by Key.
// A new target with no persisted counter starts from its current count when
// baseline is true (first start: past refusals are history), else from zero.
func (w *Watcher) Set(targets []Target, last map[string]uint64, baseline bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := map[string]bool{}
	for _, t := range targets {
		k := t.Key()
		keep[k] = true
		if _, ok := w.targets[k]; ok {
			continue
		}
		w.targets[k] = t
		switch n, ok := last[k]; {
		case ok:
			w.last[k] = n
		case baseline:
			if cur, err := readMax(t); err == nil {
				w.last[k] = cur
			}
		default:
			w.last[k] = 0
		}
		w.base[k] = w.last[k]
		if wd, err := unix.InotifyAddWatch(int(w.ino.Fd()), t.file(), unix.IN_MODIFY); err == nil {
			w.wd[k] = wd
		}
	}
	for k := range w.targets {
		if !keep[k] {
			if wd, ok := w.wd[k]; ok {
				_, _ = unix.InotifyRmWatch(int(w.ino.Fd()), uint32(wd))
				delete(w.wd, k)
			}
			delete(w.targets, k)
			delete(w.last, k)
			delete(w.base, k)
		}
	}
}

// Counters returns the current counters by Key, to persist.
func (w *Watcher) Counters() map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]uint64, len(w.last))
	for k, v := range w.last {
		out[k] = v
	}
	return out
}

// Since returns how many forks the cgroup t refused since the watcher took
// its baseline, given its counter now: the refusals this agent saw happen,
// not the cgroup's lifetime count. For a cgroup it does not watch it returns
// total.
func (w *Watcher) Since(t Target, total uint64) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	base, ok := w.base[t.Key()]
	if !ok || total < base {
		return total
	}
	return total - base
}

// Next returns the next increase, waiting for a notification or the poll.
func (w *Watcher) Next(ctx context.Context) (Refusal, error) {
	buf := make([]byte, 4096)
	for {
		if err := ctx.Err(); err != nil {
			return Refusal{}, err
		}
		if ev, ok, err := w.take(); err != nil || ok {
			return ev, err
		}
		if err := w.ino.SetReadDeadline(time.Now().Add(w.opt.Poll)); err != nil { //nolint:forbidigo // a poll deadline on the inotify descriptor
			return Refusal{}, w.closedOr(err)
		}
		// Any notification, or the deadline, leads to a rescan: the events
		// themselves carry nothing the scan does not read.
		if _, err := w.ino.Read(buf); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return Refusal{}, w.closedOr(err)
		}
	}
}

// take returns a pending event, scanning every target if none is pending.
func (w *Watcher) take() (Refusal, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return Refusal{}, false, ErrClosed
	}
	if len(w.pending) == 0 {
		for k, t := range w.targets {
			cur, err := readMax(t)
			if err != nil {
				continue // the cgroup went away; Set will drop it
			}
			prev := w.last[k]
			switch {
			case cur > prev:
				w.pending = append(w.pending, Refusal{Target: t, Refused: cur - prev, Total: cur})
			case cur < prev:
				// The cgroup was removed and created again under the same
				// path: its counter restarted from zero.
				if cur > 0 {
					w.pending = append(w.pending, Refusal{Target: t, Refused: cur, Total: cur})
				}
				w.base[k] = 0
			}
			w.last[k] = cur
		}
	}
	if len(w.pending) == 0 {
		return Refusal{}, false, nil
	}
	ev := w.pending[0]
	w.pending = w.pending[1:]
	return ev, true, nil
}

func (w *Watcher) closedOr(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Close stops the watcher; a Next waiting returns ErrClosed.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	return w.ino.Close()
}

func readMax(t Target) (uint64, error) { return headroom.ReadRejected(t.Hierarchy, t.Path) }
