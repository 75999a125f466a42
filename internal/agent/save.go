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
