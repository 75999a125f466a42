package agent

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

type chanSink chan verdict.Condition

func (s chanSink) Condition(c verdict.Condition) { s <- c }
func (chanSink) Event(verdict.Event)             {}

// TestDetectorSamplesWithNoSource: node-level headroom needs no log source.
// With every source disabled the detector keeps sampling on its timer and
// reports the condition when the node fills up, until its context ends.
func TestDetectorSamplesWithNoSource(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct"))); err != nil {
		t.Fatal(err)
	}
	pidMax := filepath.Join(root, "proc", "sys", "kernel", "pid_max")
	full, err := os.ReadFile(pidMax)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidMax, []byte("4194304\n"), 0o644); err != nil { // far from full
		t.Fatal(err)
	}
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.NewFakeClock(time.Unix(1_700_000_000, 0))
	sink := make(chanSink, 16)
	d := NewDetector(DetectorConfig{Sources: Config{Root: hostfs.New(root)}, Verdict: verdict.DefaultConfig(), SampleInterval: 2 * time.Second},
		m, clk, quietLog(), sink)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	if c := <-sink; c.Status {
		t.Fatalf("first condition %s=%v, want False far from pid_max", c.Reason, c.Status)
	}
	// Wait for the detector's ticker; a Run that returned is the bug.
	for !clk.HasWaiters() {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v with no source enabled; want it to keep sampling", err)
		default:
			runtime.Gosched()
		}
	}
	if err := os.WriteFile(pidMax, full, 0o644); err != nil { // back to 97 %
		t.Fatal(err)
	}
	clk.Step(2 * time.Second)
	select {
	case c := <-sink:
		if !c.Status || c.Reason != verdict.ReasonLow {
			t.Errorf("after the node filled: %s=%v, want PIDHeadroomLow True", c.Reason, c.Status)
		}
	case err := <-done:
		t.Fatalf("Run returned %v with no source enabled", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil on cancellation", err)
	}
}

// TestPidsEventsUnsupportedWithoutTheController: on a host with no pids
// controller the detector's one discovery of the hierarchies leaves the
// pids.events source off as not supported, rather than watching nothing.
func TestPidsEventsUnsupportedWithoutTheController(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "testdata", "hosts", "hybrid-no-pids-controller")
	clk := testclock.NewFakeClock(time.Unix(1_700_000_000, 0))
	d := NewDetector(DetectorConfig{Sources: Config{Root: hostfs.New(root), PidsEvents: true}, Verdict: verdict.DefaultConfig()},
		nil, clk, quietLog(), make(chanSink, 16))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitUntil(t, 10*time.Second, "pids.events reported not supported", func() bool {
		for _, s := range d.View().Sources {
			if s.Name == "pids.events" {
				return s.Unsupported
			}
		}
		return false
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
