package signature

import (
	"path/filepath"
	"testing"
)

// TestHeldOut scores the matcher on testdata/corpus/heldout*.txt: lines from
// public reports labelled by phenomenon (a process or thread could not be
// created, or not). The bars are the project's: recall ≥ 0.95, precision ≥ 0.98.
func TestHeldOut(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"heldout.txt", "heldout2.txt"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			scoreHeldOut(t, name)
		})
	}
}

func scoreHeldOut(t *testing.T, name string) {
	m := newTestMatcher(t)
	var tp, fp, fn, tn int
	for _, e := range loadCorpus(t, filepath.Join("..", "..", "testdata", "corpus", name)) {
		if e.want != "" || e.nearOf != "" {
			t.Fatalf("line %d: held-out entries carry no signature ID", e.lineNo)
		}
		h, matched := e.match(m)
		switch {
		case e.positive && matched:
			tp++
		case e.positive:
			fn++
			t.Logf("missed: %q", e.text)
		case matched:
			fp++
			t.Logf("false positive (%s): %q", h.Signature, e.text)
		default:
			tn++
		}
	}
	recall := float64(tp) / float64(tp+fn)
	precision := float64(tp) / float64(tp+fp)
	t.Logf("held-out: %d positives, %d negatives; TP %d FN %d FP %d TN %d; recall %.3f precision %.3f",
		tp+fn, fp+tn, tp, fn, fp, tn, recall, precision)
	if recall < 0.95 {
		t.Errorf("recall %.3f < 0.95", recall)
	}
	if precision < 0.98 {
		t.Errorf("precision %.3f < 0.98", precision)
	}
}
