package agent

import (
	"context"
	"errors"
	"maps"
	"sync/atomic"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/pidsevents"
	"github.com/pidpressure/pidpressure/internal/state"
)

// pidsEventsSource watches the pids.events of the cgroups that matter
// (internal/pidsevents): the forks the kernel refused.
type pidsEventsSource struct {
	s       *Supervisor
	saved   map[string]uint64 // the counters loaded from the state file
	fresh   bool
	watcher atomic.Pointer[pidsevents.Watcher]
}

func (p *pidsEventsSource) name() string  { return "pids.events" }
func (p *pidsEventsSource) enabled() bool { return p.s.cfg.PidsEvents }

func (p *pidsEventsSource) load(st state.State, fresh bool) {
	p.saved, p.fresh = st.PidsEvents, fresh
}

// position keeps the loaded counters until a watcher runs.
func (p *pidsEventsSource) position(st *state.State) {
	if w := p.watcher.Load(); w != nil {
		st.PidsEvents = w.Counters()
		return
	}
	maps.Copy(st.PidsEvents, p.saved)
}

func (p *pidsEventsSource) run(ctx context.Context, c *sourceCounters) error {
	s := p.s
	hs, err := s.hierarchies()
	if err != nil {
		return err
	}
	last, fresh := p.saved, p.fresh
	if prev := p.watcher.Load(); prev != nil {
		last, fresh = prev.Counters(), false // the source restarted within this run
	}
	w, err := pidsevents.New(pidsevents.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	s.setTargets(w, hs, last, fresh)
	p.watcher.Store(w)
	c.up.Store(true)
	defer c.up.Store(false)
	s.log.Info("source started", "source", "pids.events", "hierarchies", len(hs))
	tick := s.clock.NewTicker(s.cfg.Rediscover)
	defer tick.Stop()
	events := make(chan pidsevents.Refusal)
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
			s.stats.Refused.Add(ev.Refused)
			c.lines.Add(ev.Refused)
			s.deliver(Report{Kind: KindRefused, Time: s.clock.Now(), Refusal: ev})
		}
	}
}

func (s *Supervisor) setTargets(w *pidsevents.Watcher, hs []headroom.Hierarchy, last map[string]uint64, baseline bool) {
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
func (s *Supervisor) RefusedSince(h headroom.Hierarchy, path string, total uint64) uint64 {
	for _, src := range s.list {
		if p, ok := src.(*pidsEventsSource); ok {
			if w := p.watcher.Load(); w != nil {
				return w.Since(pidsevents.Target{Hierarchy: h, Path: path}, total)
			}
		}
	}
	return total
}
