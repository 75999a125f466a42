package signature

import (
	"strconv"

	"github.com/pidpressure/pidpressure/internal/logline"
)

// Limits of a [Stream]'s memory.
const (
	// ContextLines is how many previous lines of a stream [Rule.After] sees.
	ContextLines = 4
	// maxStreams bounds the number of streams remembered; past it the
	// memory is cleared (a context is lost, never a line).
	maxStreams = 4096
	// maxContextLine bounds a remembered line.
	maxContextLine = 512
)

// Stream matches lines in the order they were written, remembering the last
// ContextLines messages of each origin (a journal PID, the kmsg ring, or a
// plain text input) so that rules with [Rule.After] can see them. Memory is
// bounded. A Stream is not safe for concurrent use.
type Stream struct {
	m      *Matcher
	recent map[string]*history
}

type history struct {
	lines [ContextLines]string
	n     int // lines pushed so far
}

func (h *history) push(s string) {
	if len(s) > maxContextLine {
		s = s[:maxContextLine]
	}
	h.lines[h.n%ContextLines] = s
	h.n++
}

func (h *history) previous() []string { return h.ordered() }

// ordered returns the remembered lines, oldest first.
func (h *history) ordered() []string {
	k := min(h.n, ContextLines)
	out := make([]string, 0, k)
	for i := h.n - k; i < h.n; i++ {
		out = append(out, h.lines[i%ContextLines])
	}
	return out
}

// NewStream returns a stream over m.
func (m *Matcher) NewStream() *Stream {
	return &Stream{m: m, recent: map[string]*history{}}
}

// Match matches l in the context of the lines of the same origin seen before
// it, then remembers l.
func (s *Stream) Match(l logline.Line) (Hit, bool) {
	key := streamKey(l)
	h := s.recent[key]
	if h == nil {
		if len(s.recent) >= maxStreams {
			clear(s.recent)
		}
		h = &history{}
		s.recent[key] = h
	}
	hit, ok := s.m.match(l.Message, h)
	if ok {
		hit.Trust = l.Trust(hit.Kernel)
	}
	h.push(l.Message)
	return hit, ok
}

// streamKey names the stream a line belongs to: lines of one process follow
// each other in it even when the journal interleaves processes.
func streamKey(l logline.Line) string {
	switch {
	case l.Source == logline.SourceJournal && l.Origin.PID != logline.Unknown:
		return "pid:" + strconv.Itoa(l.Origin.PID)
	case l.Source == logline.SourceJournal:
		return "journal:" + l.Origin.Transport + ":" + l.Origin.Comm
	default:
		return string(l.Source)
	}
}
