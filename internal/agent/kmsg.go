package agent

import (
	"context"
	"fmt"

	"github.com/pidpressure/pidpressure/internal/kmsg"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/state"
)

func (s *Sources) runKmsg(ctx context.Context, pos state.KmsgPos, fresh bool) error {
	boot, err := kmsg.BootTime(s.cfg.Root, s.clock.Now())
	if err != nil {
		s.log.Warn("boot time unknown; kmsg lines are undated", "source", "kmsg", "err", err)
	}
	start, after := kmsg.StartFor(kmsg.Resume{
		BootID: s.bootID, SavedBootID: pos.BootID, SavedSeq: pos.Seq, Fresh: fresh,
		Reached: s.kmsgSeq.Load(), InRun: s.kmsgOpened.Load(),
	})
	r, err := kmsg.Open(s.cfg.KmsgPath, kmsg.Options{Boot: boot, Start: start, AfterSeq: after})
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	// The position is the reader's from now on, even if it reads nothing:
	// the end of the ring for a first start.
	s.kmsgSeq.Store(r.LastSeq())
	s.kmsgOpened.Store(true)
	s.healthy[srcKmsg].Store(true)
	defer s.healthy[srcKmsg].Store(false)
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
		p := &s.per[srcKmsg]
		p.lines.Add(1)
		p.overruns.Store(r.Stats().Overruns)
		if !l.Time.IsZero() {
			p.lag.Store(int64(s.clock.Now().Sub(l.Time)))
		}
		s.match(stream, l)
		s.kmsgSeq.Store(r.LastSeq())
	}
}

func (s *Sources) match(stream *signature.Stream, l logline.Line) {
	h, ok := stream.Match(l)
	if !ok {
		return
	}
	s.stats.Matches.Add(1)
	s.deliver(Report{Kind: KindMatch, Time: s.clock.Now(), Line: l, Hit: h})
	s.requestSave()
}
