package agent

import (
	"context"
	"fmt"

	"github.com/pidpressure/pidpressure/internal/state"
)

// requestSave asks the saver to save now; it never blocks.
func (s *Sources) requestSave() {
	select {
	case s.saveNow <- struct{}{}:
	default:
	}
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
	for _, src := range s.list {
		src.position(&st)
	}
	if s.cfg.Extra != nil {
		st.Verdict = s.cfg.Extra()
	}
	if err := store.Save(st); err != nil {
		s.log.Warn("saving state", "path", store.Path(), "err", fmt.Sprint(err))
	}
}
