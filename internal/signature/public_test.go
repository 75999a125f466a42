package signature

import (
	"fmt"
	"hash/fnv"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// heldBack says whether a source of the public corpus is in the split held
// back from tuning: one source in five, by a hash of its address, so the
// split is fixed by the data alone and was chosen before any rule was
// written against these lines.
func heldBack(origin string) bool {
	addr, _, _ := strings.Cut(origin, " ")
	h := fnv.New32a()
	_, _ = h.Write([]byte(addr))
	return h.Sum32()%5 == 0
}

// score counts a matcher's answers on labelled lines.
type score struct{ tp, fn, fp, tn int }

func (s score) recall() float64    { return ratio(s.tp, s.tp+s.fn) }
func (s score) precision() float64 { return ratio(s.tp, s.tp+s.fp) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

func (s *score) add(positive, matched bool) {
	switch {
	case positive && matched:
		s.tp++
	case positive:
		s.fn++
	case matched:
		s.fp++
	default:
		s.tn++
	}
}

// TestPublicCorpus scores the matcher on testdata/corpus/public: lines from
// public reports, one file per runtime family, labelled by phenomenon. It
// prints recall and precision per family and for the split held back from
// tuning (make eval). It holds the corpus's form — every entry labelled,
// with its source — and that the held-back split is about a fifth of the
// sources; the bars on the scores come with the catalog's generalisation.
func TestPublicCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "corpus", "public", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no public corpus: %v", err)
	}
	m := newTestMatcher(t)
	families := map[string]*score{}
	var all, held score
	sources, heldSources := map[string]bool{}, map[string]bool{}
	var missed, wrong []string
	for _, f := range files {
		family := strings.TrimSuffix(filepath.Base(f), ".txt")
		s := &score{}
		families[family] = s
		for _, e := range loadCorpus(t, f) {
			if e.want != "" || e.nearOf != "" {
				t.Fatalf("%s:%d: public entries are labelled by phenomenon, not by signature", f, e.lineNo)
			}
			h, matched := e.match(m)
			s.add(e.positive, matched)
			addr, _, _ := strings.Cut(e.origin, " ")
			sources[addr] = true
			if heldBack(e.origin) {
				held.add(e.positive, matched)
				heldSources[addr] = true
				continue
			}
			all.add(e.positive, matched)
			switch {
			case e.positive && !matched:
				missed = append(missed, family+": "+e.text)
			case !e.positive && matched:
				wrong = append(wrong, fmt.Sprintf("%s (%s): %s", family, h.Signature, e.text))
			}
		}
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %5s %5s %5s %5s %7s %9s\n", "family", "TP", "FN", "FP", "TN", "recall", "precision")
	for _, n := range names {
		s := families[n]
		fmt.Fprintf(&b, "%-12s %5d %5d %5d %5d %7.3f %9.3f\n", n, s.tp, s.fn, s.fp, s.tn, s.recall(), s.precision())
	}
	for _, r := range []struct {
		name string
		s    score
	}{{"tuning", all}, {"held back", held}} {
		fmt.Fprintf(&b, "%-12s %5d %5d %5d %5d %7.3f %9.3f\n", r.name, r.s.tp, r.s.fn, r.s.fp, r.s.tn, r.s.recall(), r.s.precision())
	}
	t.Logf("public corpus: %d sources (%d held back), %d files\n%s", len(sources), len(heldSources), len(files), b.String())
	if testing.Verbose() {
		for _, l := range missed {
			t.Logf("missed (tuning split): %q", l)
		}
		for _, l := range wrong {
			t.Logf("false positive (tuning split): %q", l)
		}
	}
	if share := float64(len(heldSources)) / float64(len(sources)); share < 0.1 || share > 0.3 {
		t.Errorf("%d of %d sources held back (%.2f): the split should be about a fifth", len(heldSources), len(sources), share)
	}
}
