package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pidpressure/pidpressure/internal/state"
)

// keeper is the one owner of the state file: it loads it once, at start,
// and saves the sources' positions and the verdict's snapshot together.
// The detector takes the verdict from what it loaded, the sources their
// positions.
type keeper struct {
	store *state.Store // nil: no state is kept
	st    state.State
	// fresh says nothing was saved: a first start.
	fresh bool
	// verdict, when set, is the verdict's snapshot to save; it is called
	// from the saver's goroutine and must be safe for that.
	verdict func() json.RawMessage
}

// loadState loads the state file of dir once ("" keeps no state). A file
// that cannot be read or is corrupt is reported and treated as none.
func loadState(dir string, log *slog.Logger) *keeper {
	k := &keeper{st: state.State{PidsEvents: map[string]uint64{}}, fresh: true}
	if dir == "" {
		return k
	}
	k.store = state.NewStore(dir)
	loaded, err := k.store.Load()
	switch {
	case errors.Is(err, state.ErrCorrupt):
		log.Warn("state file corrupt, starting afresh", "path", k.store.Path(), "err", err)
	case err != nil:
		log.Warn("state file unreadable, starting afresh", "path", k.store.Path(), "err", err)
	default:
		k.st = loaded
		if k.st.PidsEvents == nil {
			k.st.PidsEvents = map[string]uint64{}
		}
		k.fresh = k.st.Journal.Cursor == "" && k.st.Kmsg.BootID == "" && len(k.st.PidsEvents) == 0
	}
	return k
}

// requestSave asks the saver to save now; it never blocks.
func (s *Supervisor) requestSave() {
	select {
	case s.saveNow <- struct{}{}:
	default:
	}
}

func (s *Supervisor) saveLoop(ctx context.Context, store *state.Store) {
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

func (s *Supervisor) save(store *state.Store) {
	st := state.State{PidsEvents: map[string]uint64{}}
	for _, src := range s.list {
		src.position(&st)
	}
	if s.keep.verdict != nil {
		st.Verdict = s.keep.verdict()
	}
	if err := store.Save(st); err != nil {
		s.log.Warn("saving state", "path", store.Path(), "err", fmt.Sprint(err))
	}
}
