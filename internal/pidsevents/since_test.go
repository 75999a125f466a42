package pidsevents

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

// TestSinceCountsFromTheBaseline: a cgroup that refused 3,596 forks before
// the agent started, and 385 since, is reported with 385; a cgroup found
// after the start counts from zero; a recreated cgroup's counter restarts.
func TestSinceCountsFromTheBaseline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := headroom.Hierarchy{Version: 2, Dir: dir}
	events := func(cg, content string) {
		p := filepath.Join(dir, cg, "pids.events")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	events("old", "max 3596\n")
	w, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	old := Target{Hierarchy: h, Path: "/old"}
	w.Set([]Target{old}, nil, true) // first start: past refusals are history
	if got := w.Since(old, 3596+385); got != 385 {
		t.Errorf("Since(old) = %d, want 385", got)
	}
	events("new", "max 7\n")
	fresh := Target{Hierarchy: h, Path: "/new"}
	w.Set([]Target{old, fresh}, nil, false) // found while running: counts from zero
	if got := w.Since(fresh, 7); got != 7 {
		t.Errorf("Since(new) = %d, want 7", got)
	}
	// Recreated under the same path: the counter went below the baseline.
	if got := w.Since(old, 12); got != 12 {
		t.Errorf("Since(recreated) = %d, want 12", got)
	}
	if got := w.Since(Target{Hierarchy: h, Path: "/unwatched"}, 40); got != 40 {
		t.Errorf("Since(unwatched) = %d, want 40", got)
	}
}
