package agent

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// TestLateLineOfAGoneProcess: a line read after its process died, from a
// process that was in a cgroup when that cgroup refused forks, names that
// cgroup, as the lines before it did; a process never seen there, or one
// seen longer ago than the failure window, is not blamed on it.
func TestLateLineOfAGoneProcess(t *testing.T) {
	t.Parallel()
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.NewFakeClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	cfg := verdict.DefaultConfig()
	d := NewDetector(DetectorConfig{Sources: Config{Root: hostfs.New(t.TempDir())}, Verdict: cfg}, m, clk, quietLog(), discardSink{})
	d.corr.Record(nodeAt(1000))
	pod := headroom.Cgroup{Path: "/kubepods/pod1", Kind: "pod", Max: headroom.Finite(20), Current: 20, Refused: 50, AtLimit: true}
	d.members.remember(4242, pod, clk.Now())
	msg := "bash: fork: retry: Resource temporarily unavailable"
	h, ok := m.MatchString(msg)
	if !ok {
		t.Fatal("the line does not match")
	}
	line := func(pid int) Report {
		l := logline.New(logline.SourceJournal, msg)
		l.Origin.PID, l.Origin.UID, l.Time = pid, -1, clk.Now()
		return Report{Kind: KindMatch, Line: l, Hit: h}
	}
	clk.Step(time.Second)
	if f := d.lineFailure(line(4242)); f.Attribution.Layer != headroom.LayerCgroup || f.Attribution.Cgroup == nil || f.Attribution.Cgroup.Path != pod.Path {
		t.Errorf("late line of pid 4242: %+v, want the pod's cgroup", f.Attribution)
	}
	if f := d.lineFailure(line(4243)); f.Attribution.Layer != headroom.LayerNone {
		t.Errorf("line of pid 4243, never seen in a refusing cgroup: %+v", f.Attribution)
	}
	clk.Step(cfg.FailureWindow)
	d.corr.Record(nodeAt(1000))
	if f := d.lineFailure(line(4242)); f.Attribution.Layer != headroom.LayerNone {
		t.Errorf("line of pid 4242 after the failure window: %+v", f.Attribution)
	}
}

type eventSink struct {
	mu     sync.Mutex
	events []verdict.Event
}

func (s *eventSink) Condition(verdict.Condition) {}
func (s *eventSink) Event(e verdict.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *eventSink) find(reason verdict.EventReason, subject string) (verdict.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.Reason == reason && e.Subject == subject {
			return e, true
		}
	}
	return verdict.Event{}, false
}

// zombieParent starts a process that forks n children that exit at once
// and never reaps them until it is told to stop.
func zombieParent(t *testing.T, n int) int {
	t.Helper()
	script := `$SIG{TERM} = sub { 1 while waitpid(-1, 0) > 0; exit 0 };
for (1..$ARGV[0]) { my $p = fork; die "fork: $!" unless defined $p; exit 0 if $p == 0 }
$| = 1; print "ready\n"; sleep 3600;`
	cmd := exec.Command("perl", "-e", script, strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("perl: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(l) != "ready" {
		t.Fatalf("zombie parent: %q, %v", l, err)
	}
	return cmd.Process.Pid
}

// TestZombieCensusWhileRunning: a parent that leaves 80 zombies after the
// detector started is announced at the next census, while it runs.
func TestZombieCensusWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("live: real processes on this host")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	t.Parallel()
	clk := testclock.NewFakeClock(time.Now())
	sink := &eventSink{}
	d := NewDetector(DetectorConfig{Sources: Config{Root: hostfs.New("/")}, Verdict: verdict.DefaultConfig(), CensusInterval: time.Minute}, nil, clk, quietLog(), sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitUntil(t, 10*time.Second, "the detector's ticker", clk.HasWaiters)
	pid := zombieParent(t, 80)
	// The children exit on their own time: wait until all 80 are zombies.
	waitUntil(t, 10*time.Second, "80 zombies", func() bool {
		scan, _ := headroom.Walk(hostfs.New("/"), 64)
		for _, z := range scan.ZombieParents {
			if z.PID == pid {
				return z.Zombies == 80
			}
		}
		return false
	})
	subject := "pid " + strconv.Itoa(pid)
	if _, ok := sink.find(verdict.EventZombiesAccumulating, subject); ok {
		t.Fatal("announced before any census saw the zombies")
	}
	clk.Step(time.Minute)
	waitUntil(t, 10*time.Second, "the census to announce the parent", func() bool {
		_, ok := sink.find(verdict.EventZombiesAccumulating, subject)
		return ok
	})
	e, _ := sink.find(verdict.EventZombiesAccumulating, subject)
	if !strings.Contains(e.Message, "(pid "+strconv.Itoa(pid)) || !strings.Contains(e.Message, "holds 80 zombie processes") {
		t.Errorf("event = %+v", e)
	}
}

// waitUntil polls cond until it holds or the limit passes.
func waitUntil(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
