package agent

import (
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

// TestPeakOfRecentSamples: a failure is attributed to the fullest node
// sample of the last two sample intervals, because the process that failed
// often freed its tasks before its line was read; older samples do not
// count.
func TestPeakOfRecentSamples(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(0, 0))
	d := NewDetector(DetectorConfig{SampleInterval: time.Second}, nil, clk, nil, nil)
	full := headroom.Node{Tasks: 499, Limit: 499}
	calm := headroom.Node{Tasks: 23, Limit: 499}
	d.remember(full)
	clk.Step(1500 * time.Millisecond)
	d.remember(calm)
	if got := d.peak(); got.Tasks != 499 {
		t.Errorf("peak 1.5 s after a full sample = %d tasks, want 499", got.Tasks)
	}
	clk.Step(time.Second) // the full sample is now 2.5 s old
	d.remember(calm)
	if got := d.peak(); got.Tasks != 23 {
		t.Errorf("peak 2.5 s after a full sample = %d tasks, want 23 (older than two intervals)", got.Tasks)
	}
	for range 100 {
		d.remember(calm)
	}
	if len(d.recent) > 64 {
		t.Errorf("%d samples kept, want at most 64", len(d.recent))
	}
}
