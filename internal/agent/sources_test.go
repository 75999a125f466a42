package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/state"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestSupervisor(t *testing.T, clk *testclock.FakeClock, buffer int) *Supervisor {
	t.Helper()
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	return NewSupervisor(Config{Buffer: buffer}, m, clk, quietLog())
}

// TestSuperviseBacksOff: a failing source is restarted after 1 s, 2 s, 4 s…
// on the injected clock, never in a tight loop.
func TestSuperviseBacksOff(t *testing.T) {
	t.Parallel()
	clk := testclock.NewFakeClock(time.Unix(0, 0))
	s := newTestSupervisor(t, clk, 1)
	var runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.supervise(ctx, indexOf(t, s, "kmsg"), func(context.Context) error { runs.Add(1); return errors.New("boom") })
		close(done)
	}()
	defer func() {
		if st := s.SourceStats()[indexOf(t, s, "kmsg")]; st.Err != "boom" || st.Unsupported {
			t.Errorf("kmsg stat after failures: %+v, want Err boom, supported", st)
		}
	}()
	waitFor := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runs.Load() < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := runs.Load(); got != n {
			t.Fatalf("runs = %d, want %d", got, n)
		}
	}
	waitFor(1)
	for _, step := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		// Just short of the backoff: no restart.
		for !clk.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		before := runs.Load()
		clk.Step(step - time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		if runs.Load() != before {
			t.Fatalf("restarted before its %v backoff", step)
		}
		clk.Step(time.Millisecond)
		waitFor(before + 1)
	}
	cancel()
	<-done
}

// TestSuperviseGivesUpWhenNotSupported: a source this host cannot provide is
// not retried, however long the run lasts, and supervise returns only when
// the run ends (so that Run blocks until its context is done even when no
// source can run).
func TestSuperviseGivesUpWhenNotSupported(t *testing.T) {
	t.Parallel()
	clk := testclock.NewFakeClock(time.Unix(0, 0))
	s := newTestSupervisor(t, clk, 1)
	var runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.supervise(ctx, indexOf(t, s, "journal"), func(context.Context) error {
			runs.Add(1)
			return hostfs.NotSupported("journal", errors.New("no journal here"))
		})
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !s.SourceStats()[indexOf(t, s, "journal")].Unsupported {
		if time.Now().After(deadline) {
			t.Fatal("the source was not marked unsupported")
		}
		time.Sleep(time.Millisecond)
	}
	clk.Step(time.Hour) // far past any backoff
	select {
	case <-done:
		t.Fatal("supervise returned before its context ended")
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-done
	if runs.Load() != 1 {
		t.Errorf("runs = %d, want 1", runs.Load())
	}
	if st := s.SourceStats()[indexOf(t, s, "journal")]; !st.Unsupported || st.Up {
		t.Errorf("journal stat %+v, want unsupported and not up", st)
	}
}

// TestDeliverDropsAndCounts: with nobody reading, reports beyond the buffer
// are dropped and counted; delivery never blocks.
func TestDeliverDropsAndCounts(t *testing.T) {
	t.Parallel()
	s := newTestSupervisor(t, testclock.NewFakeClock(time.Unix(0, 0)), 4)
	stream := s.m.NewStream()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			s.match(stream, logline.New(logline.SourceText, "bash: fork: retry: Resource temporarily unavailable"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("delivery blocked")
	}
	if got := s.stats.Dropped.Load(); got != 6 || len(s.Reports()) != 4 || s.stats.Matches.Load() != 10 {
		t.Errorf("dropped %d, queued %d, matches %d; want 6, 4, 10", got, len(s.Reports()), s.stats.Matches.Load())
	}
}

// TestRunWithNothingEnabled returns when its context ends.
func TestRunWithNothingEnabled(t *testing.T) {
	t.Parallel()
	s := newTestSupervisor(t, testclock.NewFakeClock(time.Unix(0, 0)), 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil on cancellation", err)
	}
}

// TestSaveKeepsKmsgPositionUntilRead: a run whose kmsg source never opens
// (here: no device) saves the position it loaded, not this boot with seq 0,
// which would make the next start replay the whole ring as new.
func TestSaveKeepsKmsgPositionUntilRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for p, body := range map[string]string{
		"proc/sys/kernel/random/boot_id": "1ec6fd9a-569a-47d9-90c8-a15493bd6e53\n",
		"proc/uptime":                    "350735.47 234388.90\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stateDir := t.TempDir()
	store := state.NewStore(stateDir)
	saved := state.KmsgPos{BootID: "1ec6fd9a-569a-47d9-90c8-a15493bd6e53", Seq: 1208}
	if err := store.Save(state.State{Kmsg: saved}); err != nil {
		t.Fatal(err)
	}
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	s := NewSupervisor(Config{Root: hostfs.New(dir), KmsgPath: filepath.Join(dir, "dev", "kmsg"), StateDir: stateDir},
		m, testclock.NewFakeClock(time.Unix(0, 0)), quietLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s.SourceStats()[indexOf(t, s, "kmsg")].Unsupported {
		if time.Now().After(deadline) {
			t.Fatal("the kmsg source did not give up on a missing device")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(saved, st.Kmsg); diff != "" {
		t.Errorf("saved kmsg position mismatch (-want +got):\n%s", diff)
	}
}

// TestPrewarmThreads: the threads exist when PrewarmThreads returns and
// stay (idle, in the runtime's pool), and no goroutine is left behind.
func TestPrewarmThreads(t *testing.T) {
	t.Parallel()
	const n = 64 // far more than a test process runs on its own
	goroutines := runtime.NumGoroutine()
	PrewarmThreads(n, 0)
	for range 2 { // right after, and again: the threads did not exit
		if got := osThreads(t); got < n {
			t.Fatalf("%d OS threads after PrewarmThreads(%d)", got, n)
		}
	}
	if g := runtime.NumGoroutine(); g > goroutines+8 {
		t.Errorf("%d goroutines after, %d before: PrewarmThreads left its goroutines behind", g, goroutines)
	}
}

// osThreads is this process's thread count (Threads: of /proc/self/status).
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// indexOf is the index of the source named name in s's list.
func indexOf(t testing.TB, s *Supervisor, name string) int {
	t.Helper()
	for i, src := range s.list {
		if src.name() == name {
			return i
		}
	}
	t.Fatalf("no source %q", name)
	return -1
}

// TestPositionsKeptWhileASourceDoesNotRun: a run in which no source reads
// (all off here) saves the positions it loaded, so that the next run with
// the sources on neither starts at the tail nor replays.
func TestPositionsKeptWhileASourceDoesNotRun(t *testing.T) {
	t.Parallel()
	clk := testclock.NewFakeClock(time.Unix(0, 0))
	s := newTestSupervisor(t, clk, 1)
	loaded := state.State{
		Journal:    state.JournalPos{Cursor: "s=abc;i=12"},
		Kmsg:       state.KmsgPos{BootID: "b1", Seq: 1208},
		PidsEvents: map[string]uint64{"v2:/kubepods.slice": 37},
	}
	for _, src := range s.list {
		src.load(loaded, false)
	}
	got := state.State{PidsEvents: map[string]uint64{}}
	for _, src := range s.list {
		src.position(&got)
	}
	if diff := cmp.Diff(loaded, got); diff != "" {
		t.Errorf("positions saved (-loaded +saved):\n%s", diff)
	}
}
