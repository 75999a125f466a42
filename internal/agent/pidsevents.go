package agent

import (
	"context"
	"errors"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/pidsevents"
)

func (s *Sources) runPidsEvents(ctx context.Context, last map[string]uint64, fresh bool) error {
	hs, err := headroom.Hierarchies(s.cfg.Root)
	if err != nil {
		return err
	}
	if prev := s.watcher.Load(); prev != nil {
		last, fresh = prev.Counters(), false // the source restarted within this run
	}
	w, err := pidsevents.New(pidsevents.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	s.setTargets(w, hs, last, fresh)
	s.watcher.Store(w)
	s.healthy[srcPidsEvents].Store(true)
	defer s.healthy[srcPidsEvents].Store(false)
	s.log.Info("source started", "source", "pids.events", "hierarchies", len(hs))
	tick := s.clock.NewTicker(s.cfg.Rediscover)
	defer tick.Stop()
	events := make(chan pidsevents.Event)
	errc := make(chan error, 1)
	go func() {
		for {
			ev, err := w.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			_ = w.Close()
			if err := <-errc; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, pidsevents.ErrClosed) {
				s.log.Debug("pids.events reader ended", "source", "pids.events", "err", err)
			}
			return ctx.Err()
		case err := <-errc:
			return err
		case <-tick.C():
			s.setTargets(w, hs, nil, false) // new cgroups start from zero
		case ev := <-events:
			s.stats.Rejected.Add(ev.Rejected)
			s.per[srcPidsEvents].lines.Add(ev.Rejected)
			s.deliver(Report{Kind: KindRejected, Time: s.clock.Now(), Event: ev})
		}
	}
}

func (s *Sources) setTargets(w *pidsevents.Watcher, hs []headroom.Hierarchy, last map[string]uint64, baseline bool) {
	var targets []pidsevents.Target
	for _, h := range hs {
		found, err := headroom.Discover(s.cfg.Root, h)
		if err != nil {
			s.log.Warn("listing cgroups", "source", "pids.events", "err", err)
		}
		for _, t := range found {
			targets = append(targets, pidsevents.Target{Hierarchy: h, Path: t.Path})
		}
		for _, p := range s.cfg.Cgroups {
			targets = append(targets, pidsevents.Target{Hierarchy: h, Path: p})
		}
	}
	w.Set(targets, last, baseline)
}

// RefusedSince returns how many forks the cgroup at path of h refused since
// the pids.events source took its baseline, given its counter now (the
// counter itself before the source runs or for a cgroup it does not watch).
func (s *Sources) RefusedSince(h headroom.Hierarchy, path string, total uint64) uint64 {
	w := s.watcher.Load()
	if w == nil {
		return total
	}
	return w.Since(pidsevents.Target{Hierarchy: h, Path: path}, total)
}
