package signature

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unsafe"

	ahocorasick "github.com/petar-dambovaliev/aho-corasick"

	"github.com/pidpressure/pidpressure/internal/logline"
)

// maxAnchors bounds the number of distinct anchors so that the set of
// anchors found in a line fits in a fixed-size bitset (no allocation per line).
const maxAnchors = 256

// maxFieldLen bounds an extracted text field (program, cgroup).
const maxFieldLen = 256

type anchorSet [maxAnchors / 64]uint64

func (s *anchorSet) add(i int) { s[i/64] |= 1 << (i % 64) }
func (s *anchorSet) intersects(o *anchorSet) bool {
	return s[0]&o[0]|s[1]&o[1]|s[2]&o[2]|s[3]&o[3] != 0
}

// Hit is one line recognised as a creation failure.
type Hit struct {
	// Signature is the ID of the rule that matched.
	Signature string `json:"signature"`
	// Family is the rule's family.
	Family string `json:"family"`
	// Class is what the program failed to create.
	Class Class `json:"class"`
	// Strength is how much this line proves (see [Rule.ErrnoDecides]).
	Strength Strength `json:"strength"`
	// Kernel says the signature is one only the kernel writes.
	Kernel bool `json:"kernel,omitempty"`
	// Trust is how far the line's origin can be believed.
	Trust logline.Trust `json:"trust"`
	// Fields are the facts extracted from the line.
	Fields Fields `json:"fields"`
}

// Matcher matches lines against a catalog. It is safe for concurrent use.
type Matcher struct {
	grams   gramFilter
	ac      ahocorasick.AhoCorasick
	anchors int
	rules   []compiled
	masks   []anchorSet
}

// NewMatcher compiles rules, which are tried in order. It returns every
// problem at once, each prefixed with the rule's index, wrapping [ErrRule].
func NewMatcher(rules []Rule) (*Matcher, error) {
	var errs []error
	m := &Matcher{}
	index := map[string]int{}
	var patterns []string
	ids := map[string]int{}
	for i, r := range rules {
		if j, dup := ids[r.ID]; dup && r.ID != "" {
			errs = append(errs, fmt.Errorf("rules[%d]: %w: id %s is already used by rules[%d]", i, ErrRule, r.ID, j))
			continue
		}
		ids[r.ID] = i
		c, err := compile(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
			continue
		}
		var mask anchorSet
		for _, a := range r.Anchors {
			a = strings.ToLower(a)
			k, ok := index[a]
			if !ok {
				k = len(patterns)
				if k >= maxAnchors {
					errs = append(errs, fmt.Errorf("rules[%d]: %w: more than %d distinct anchors", i, ErrRule, maxAnchors))
					break
				}
				index[a] = k
				patterns = append(patterns, a)
			}
			mask.add(k)
		}
		m.rules = append(m.rules, c)
		m.masks = append(m.masks, mask)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	builder := ahocorasick.NewAhoCorasickBuilder(ahocorasick.Opts{
		AsciiCaseInsensitive: true,
		MatchKind:            ahocorasick.StandardMatch,
		DFA:                  true,
	})
	m.ac = builder.Build(patterns)
	m.grams = newGramFilter(patterns)
	m.anchors = len(patterns)
	return m, nil
}

// NewDefault returns a matcher over the built-in catalog.
func NewDefault() (*Matcher, error) { return NewMatcher(Builtin()) }

// Match returns the hit for line l: the first rule, in priority order, that
// matches the message. A line reports one failure, so it yields at most one
// hit. Kernel signatures match whatever the origin; the hit's Trust says
// whether the kernel wrote it, and a consumer must not act on a kernel
// signature whose Trust is not [logline.TrustKernel].
func (m *Matcher) Match(l logline.Line) (Hit, bool) {
	h, ok := m.MatchString(l.Message)
	if !ok {
		return Hit{}, false
	}
	h.Trust = l.Trust(h.Kernel)
	return h, true
}

// MatchString matches a bare message; the hit's Trust is [logline.TrustNone].
// Rules that need context ([Rule.After]) do not match; see [Stream].
func (m *Matcher) MatchString(msg string) (Hit, bool) { return m.match(msg, nil) }

// MatchAfter matches msg given prev, the previous messages of the same stream
// (oldest first), which rules with [Rule.After] consult.
func (m *Matcher) MatchAfter(msg string, prev []string) (Hit, bool) {
	return m.MatchWith(msg, func() []string { return prev })
}

// MatchWith matches msg and calls context — which returns the previous
// messages of the same stream, oldest first — only when a rule that needs
// context ([Rule.After]) has matched msg itself: a source for which context
// is costly (the journal must step back to find it) pays only on such lines.
func (m *Matcher) MatchWith(msg string, context func() []string) (Hit, bool) {
	return m.match(msg, contextFunc(context))
}

// contextSource gives the previous lines of a stream, when asked.
type contextSource interface {
	previous() []string
}

type contextFunc func() []string

func (f contextFunc) previous() []string {
	if f == nil {
		return nil
	}
	return f()
}

// match runs the prefilter and the rules; prev is read only by rules that
// need context.
func (m *Matcher) match(msg string, prev contextSource) (Hit, bool) {
	var found anchorSet
	if !m.scan(msg, &found) {
		return Hit{}, false
	}
	for i := range m.rules {
		if !found.intersects(&m.masks[i]) {
			continue
		}
		if h, ok := m.rules[i].confirm(msg, prev); ok {
			h.Trust = logline.TrustNone
			return h, true
		}
	}
	return Hit{}, false
}

// scan runs the prefilter and reports whether any anchor occurs in msg.
func (m *Matcher) scan(msg string, found *anchorSet) bool {
	if len(msg) == 0 || m.anchors == 0 || !m.grams.mayMatch(msg) {
		return false
	}
	// The automaton only reads the haystack; viewing the string's bytes
	// avoids copying every line.
	b := unsafe.Slice(unsafe.StringData(msg), len(msg))
	it := m.ac.IterOverlappingByte(b)
	any := false
	for mt := it.Next(); mt != nil; mt = it.Next() {
		found.add(mt.Pattern())
		any = true
	}
	return any
}

// confirm runs the rule's expressions over msg (and prev, for a rule that
// needs context; nil means none) and extracts the fields.
func (c *compiled) confirm(msg string, prev contextSource) (Hit, bool) {
	sm := c.re.FindStringSubmatchIndex(msg)
	if sm == nil {
		return Hit{}, false
	}
	if c.reject != nil && c.reject.MatchString(msg) {
		return Hit{}, false
	}
	if c.after != nil && (prev == nil || !anyMatch(c.after, lastLines(prev.previous()))) {
		return Hit{}, false
	}
	group := func(gs []int) string {
		for _, g := range gs {
			if sm[2*g] >= 0 {
				return msg[sm[2*g]:sm[2*g+1]]
			}
		}
		return ""
	}
	f := Fields{
		Threads: atoi(group(c.gThreads)),
		Limit:   atoi(group(c.gLimit)),
		Cgroup:  clip(group(c.gCgroup)),
		Program: clip(strings.TrimSpace(group(c.gProgram))),
		Relayed: strings.Contains(msg[:sm[0]], grpcRelay),
	}
	hint := group(c.gErrno)
	if hint == "" {
		hint = group(c.gErrtext)
	}
	f.Errno = findErrno(msg, hint)
	strength := c.Strength
	if c.ErrnoDecides {
		switch f.Errno {
		case errnoEAGAIN:
			strength = Definitive
		case 0, errnoECHILD:
			strength = Corroborate
		default:
			// ENOMEM (memory, or a PID namespace whose init has died),
			// EINTR (task creation never fails with it: another call's
			// errno), ENOENT, EACCES, EPROTO, …: a failure, but not of PID
			// supply.
			return Hit{}, false
		}
	}
	return Hit{
		Signature: c.ID,
		Family:    c.Family,
		Class:     c.Class,
		Strength:  strength,
		Kernel:    c.Kernel,
		Fields:    f,
	}, true
}

func anyMatch(re *regexp.Regexp, lines []string) bool {
	for _, l := range lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// clip bounds a field taken from an untrusted line.
func clip(s string) string { return logline.Clip(s, maxFieldLen) }

// lastLines keeps the last ContextLines lines.
func lastLines(l []string) []string { return l[max(0, len(l)-ContextLines):] }
