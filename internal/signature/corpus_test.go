package signature

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusEntry is one line of testdata/corpus/signatures.txt.
type corpusEntry struct {
	lineNo int
	want   string // signature ID; "" for a negative
	nearOf string // for a negative, the ID it is a near miss of
	text   string
	origin string
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
		if !ok || (line[0] != '+' && line[0] != '-') {
			t.Fatalf("%s:%d: want +ID<TAB>line or -[ID]<TAB>line, got %q", path, n, line)
		}
		if origin == "" {
			t.Fatalf("%s:%d: entry without a preceding # origin: line", path, n)
		}
		e := corpusEntry{lineNo: n, text: text, origin: origin}
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
		h, ok := m.MatchString(e.text)
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
		if h, ok := m.rules[i].confirm(msg); ok {
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
