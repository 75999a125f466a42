package signature

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pidpressure/pidpressure/internal/logline"
)

// corpusEntry is one line of testdata/corpus/signatures.txt.
type corpusEntry struct {
	lineNo int
	want   string // signature ID; "" for a negative
	nearOf string // for a negative, the ID it is a near miss of
	// positive is the label: the line reports a creation failure.
	positive bool
	text     string
	origin   string
	// context are the "=" lines before the entry: earlier lines of the same
	// stream, fed to a Stream first and never scored themselves.
	context []string
}

func loadCorpus(t testing.TB, path string) []corpusEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []corpusEntry
	origin := ""
	var context []string
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# origin:"):
			origin = strings.TrimSpace(strings.TrimPrefix(line, "# origin:"))
			continue
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		}
		id, text, ok := strings.Cut(line[1:], "\t")
		if ok && line[0] == '=' && id == "" {
			context = append(context, text)
			continue
		}
		if !ok || (line[0] != '+' && line[0] != '-') {
			t.Fatalf("%s:%d: want +ID<TAB>line, -[ID]<TAB>line or =<TAB>context, got %q", path, n, line)
		}
		if origin == "" {
			t.Fatalf("%s:%d: entry without a preceding # origin: line", path, n)
		}
		e := corpusEntry{lineNo: n, text: text, origin: origin, context: context}
		context = nil
		e.positive = line[0] == '+'
		if line[0] == '+' {
			e.want = id
		} else {
			e.nearOf = id
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// match matches the entry after feeding its context to a fresh stream.
func (e corpusEntry) match(m *Matcher) (Hit, bool) {
	s := m.NewStream()
	for _, c := range e.context {
		s.Match(logline.New(logline.SourceText, c))
	}
	return s.Match(logline.New(logline.SourceText, e.text))
}

func newTestMatcher(t testing.TB) *Matcher {
	t.Helper()
	m, err := NewDefault()
	if err != nil {
		t.Fatalf("NewDefault() error = %v", err)
	}
	return m
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	m := newTestMatcher(t)
	for _, e := range loadCorpus(t, filepath.Join("..", "..", "testdata", "corpus", "signatures.txt")) {
		h, ok := e.match(m)
		switch {
		case e.want != "" && !ok:
			t.Errorf("line %d: %q: no match, want %s", e.lineNo, e.text, e.want)
		case e.want != "" && h.Signature != e.want:
			t.Errorf("line %d: %q: matched %s, want %s", e.lineNo, e.text, h.Signature, e.want)
		case e.want == "" && ok:
			t.Errorf("line %d: near miss %q matched %s (%s)", e.lineNo, e.text, h.Signature, h.Strength)
		}
	}
}

// TestCorpusCoversCatalog: every signature has a positive line and a near miss.
func TestCorpusCoversCatalog(t *testing.T) {
	t.Parallel()
	pos, near := map[string]int{}, map[string]int{}
	for _, e := range loadCorpus(t, filepath.Join("..", "..", "testdata", "corpus", "signatures.txt")) {
		if e.want != "" {
			pos[e.want]++
		}
		if e.nearOf != "" {
			near[e.nearOf]++
		}
	}
	known := map[string]bool{}
	for _, r := range Builtin() {
		known[r.ID] = true
		if pos[r.ID] == 0 {
			t.Errorf("%s has no positive line in the corpus", r.ID)
		}
		if near[r.ID] == 0 {
			t.Errorf("%s has no near-miss line in the corpus", r.ID)
		}
	}
	for id := range pos {
		if !known[id] {
			t.Errorf("corpus names unknown signature %s", id)
		}
	}
	for id := range near {
		if !known[id] {
			t.Errorf("corpus names unknown signature %s as a near miss", id)
		}
	}
}

// bruteForce is the matcher without its prefilter: every rule's expression
// in order. The prefilter must never change the answer.
func bruteForce(m *Matcher, msg string) (Hit, bool) {
	for i := range m.rules {
		if h, ok := m.rules[i].confirm(msg, nil); ok {
			return h, true
		}
	}
	return Hit{}, false
}

func TestPrefilterHidesNothing(t *testing.T) {
	t.Parallel()
	m := newTestMatcher(t)
	var lines []string
	for _, e := range loadCorpus(t, filepath.Join("..", "..", "testdata", "corpus", "signatures.txt")) {
		lines = append(lines, e.text)
	}
	captured, err := filepath.Glob(filepath.Join("..", "..", "testdata", "captured", "*.txt"))
	if err != nil || len(captured) == 0 {
		t.Fatalf("no captured outputs: %v", err)
	}
	for _, p := range captured {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(string(b), "\n")...)
	}
	for _, l := range lines {
		got, gotOK := m.MatchString(l)
		want, wantOK := bruteForce(m, l)
		if gotOK != wantOK || got.Signature != want.Signature {
			t.Errorf("%q: matcher gave (%s, %v), rules alone give (%s, %v)", l, got.Signature, gotOK, want.Signature, wantOK)
		}
	}
}

// TestStreamContext replays the real Python tracebacks captured here: the
// last line is a fork failure only because the frames above it fork.
func TestStreamContext(t *testing.T) {
	t.Parallel()
	m := newTestMatcher(t)
	for _, name := range []string{"pyfork.txt", "pysub.txt"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "captured", name))
		if err != nil {
			t.Fatal(err)
		}
		s := m.NewStream()
		var got []string
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if h, ok := s.Match(logline.New(logline.SourceText, line)); ok {
				got = append(got, h.Signature+" "+string(h.Strength)+" "+line)
			}
		}
		want := []string{"PythonForkFailed definitive BlockingIOError: [Errno 11] Resource temporarily unavailable"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: hits mismatch (-want +got):\n%s", name, diff)
		}
	}
	// The same line without context, or below a socket frame, is not a hit.
	if h, ok := m.MatchString("OSError: [Errno 11] Resource temporarily unavailable"); ok {
		t.Errorf("without context: matched %s", h.Signature)
	}
	s := m.NewStream()
	for _, l := range []string{
		"  File \"/usr/lib/python3.11/multiprocessing/connection.py\", line 383, in answer_challenge",
		"    message = connection.recv_bytes(256)",
		"IOError: [Errno 11] Resource temporarily unavailable",
	} {
		if h, ok := s.Match(logline.New(logline.SourceText, l)); ok {
			t.Errorf("socket traceback: %q matched %s", l, h.Signature)
		}
	}
	// Context is per process: a fork frame of PID 1 does not explain PID 2's error.
	s = m.NewStream()
	frame := logline.New(logline.SourceJournal, "    self.pid = os.fork()")
	frame.Origin.PID = 1
	errLine := logline.New(logline.SourceJournal, "OSError: [Errno 11] Resource temporarily unavailable")
	errLine.Origin.PID = 2
	s.Match(frame)
	if _, ok := s.Match(errLine); ok {
		t.Error("PID 2's error matched on PID 1's frame")
	}
	errLine.Origin.PID = 1
	if h, ok := s.Match(errLine); !ok || h.Signature != "PythonForkFailed" {
		t.Errorf("PID 1's error after its fork frame: %v %v", h.Signature, ok)
	}
}
