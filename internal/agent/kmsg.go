package agent

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/pidpressure/pidpressure/internal/kmsg"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/state"
)

// kmsgName names the kmsg source: the journal source defers to it for
// kernel records while it runs.
const kmsgName = "kmsg"

// kmsgSource reads /dev/kmsg (internal/kmsg).
type kmsgSource struct {
	s      *Supervisor
	bootID string        // this boot's, read once at load
	saved  state.KmsgPos // as loaded; kept while no reader opened
	fresh  bool
	seq    atomic.Uint64 // valid once opened
	opened atomic.Bool   // a reader stood somewhere in this run
}

func (k *kmsgSource) name() string  { return kmsgName }
func (k *kmsgSource) enabled() bool { return k.s.cfg.KmsgPath != "" }

func (k *kmsgSource) load(st state.State, fresh bool) {
	k.saved, k.fresh = st.Kmsg, fresh
	if !k.enabled() {
		return
	}
	id, err := kmsg.BootID(k.s.cfg.Root)
	if err != nil {
		k.s.log.Warn("boot ID unknown; kmsg starts at the end", "source", "kmsg", "err", err)
	}
	k.bootID = id
}

// position keeps the loaded position until a reader opens in this run
// (kmsg off, not permitted, or not yet started): saving this boot with seq
// 0 would make the next start replay the whole ring as new.
func (k *kmsgSource) position(st *state.State) {
	st.Kmsg = k.saved
	if k.opened.Load() {
		st.Kmsg = state.KmsgPos{BootID: k.bootID, Seq: k.seq.Load()}
	}
}

func (k *kmsgSource) run(ctx context.Context, c *sourceCounters) error {
	s, pos := k.s, k.saved
	boot, err := kmsg.BootTime(s.cfg.Root, s.clock.Now())
	if err != nil {
		s.log.Warn("boot time unknown; kmsg lines are undated", "source", "kmsg", "err", err)
	}
	start, after := kmsg.StartFor(kmsg.Resume{
		BootID: k.bootID, SavedBootID: pos.BootID, SavedSeq: pos.Seq, Fresh: k.fresh,
		Reached: k.seq.Load(), InRun: k.opened.Load(),
	})
	r, err := kmsg.Open(s.cfg.KmsgPath, kmsg.Options{Boot: boot, Start: start, AfterSeq: after})
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	// The position is the reader's from now on, even if it reads nothing:
	// the end of the ring for a first start.
	k.seq.Store(r.LastSeq())
	k.opened.Store(true)
	c.up.Store(true)
	defer c.up.Store(false)
	o := r.Opened()
	if o.SeqBeyondRing {
		s.log.Warn("saved kmsg position is beyond the end of the ring of this boot; resuming at the end",
			"source", "kmsg", "saved_seq", after, "ring_end", o.End)
	}
	s.log.Info("source started", "source", "kmsg", "path", s.cfg.KmsgPath, "start", o.Start.String(), "seq", r.LastSeq())
	stream := s.m.NewStream()
	for {
		l, err := r.Next(ctx)
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.cfg.KmsgPath, err)
		}
		s.stats.Lines.Add(1)
		c.lines.Add(1)
		c.overruns.Store(r.Stats().Overruns)
		if !l.Time.IsZero() {
			c.lag.Store(int64(s.clock.Now().Sub(l.Time)))
		}
		s.match(stream, l)
		k.seq.Store(r.LastSeq())
	}
}

func (s *Supervisor) match(stream *signature.Stream, l logline.Line) {
	h, ok := stream.Match(l)
	if !ok {
		return
	}
	s.stats.Matches.Add(1)
	s.deliver(Report{Kind: KindMatch, Time: s.clock.Now(), Line: l, Hit: h})
	s.requestSave()
}
