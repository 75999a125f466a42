package verdict

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryReasonHasADocPage holds docs/reasons to the public API (DESIGN
// §3): a page per condition reason and Event reason, listed in the index,
// with a meaning and something to do.
func TestEveryReasonHasADocPage(t *testing.T) {
	dir := filepath.Join("..", "..", "docs", "reasons")
	index, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{string(ReasonExhausted), string(ReasonPredicted), string(ReasonLow), string(ReasonSufficient)}
	for _, r := range EventReasons() {
		names = append(names, string(r))
	}
	for _, name := range names {
		page, err := os.ReadFile(filepath.Join(dir, name+".md"))
		if err != nil {
			t.Errorf("no doc page for %s: %v", name, err)
			continue
		}
		if !strings.Contains(string(index), "("+name+".md)") {
			t.Errorf("docs/reasons/README.md does not list %s", name)
		}
		if !strings.Contains(string(page), "**Meaning.**") || !strings.Contains(string(page), name) {
			t.Errorf("docs/reasons/%s.md lacks its meaning", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(names)+1 {
		t.Errorf("docs/reasons has %d files, want %d pages and the index: a page for a reason that does not exist?", len(entries), len(names))
	}
}
