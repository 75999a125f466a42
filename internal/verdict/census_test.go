package verdict

import (
	"strings"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

var consumers = []headroom.Consumer{
	{Kind: headroom.ConsumerPod, Name: "batch/threadbomb", Tasks: 20000},
	{Kind: headroom.ConsumerProcess, Name: "java (pid 4242)", Tasks: 9000},
	{Kind: headroom.ConsumerUnit, Name: "containerd.service", Tasks: 310},
}

const consumersText = "top consumers: pod batch/threadbomb 20000 tasks, java (pid 4242) 9000 tasks, containerd.service 310 tasks"

// TestNodeLevelMessagesNameTheConsumers: when a node-level limit binds, the
// condition (PIDHeadroomLow, PIDExhausted, PIDExhaustionPredicted) and the
// failure's Event name the top consumers; a False condition does not.
func TestNodeLevelMessagesNameTheConsumers(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	c.ObserveConsumers(consumers)
	c.Record(node(900))
	if cond, _ := c.Evaluate(); cond.Status || strings.Contains(cond.Message, "top consumers") {
		t.Errorf("healthy: %q names consumers", cond.Message)
	}
	c.Record(node(28000))
	cond, _ := c.Evaluate()
	if cond.Reason != ReasonLow || !strings.HasSuffix(cond.Message, consumersText) {
		t.Errorf("low: %+v, want it to end with %q", cond, consumersText)
	}
	clk.Step(time.Second)
	c.Observe(nodeFailure(node(32460)))
	cond, events := c.Evaluate()
	if cond.Reason != ReasonExhausted || !strings.HasSuffix(cond.Message, consumersText) {
		t.Errorf("exhausted: %+v", cond)
	}
	if len(events) != 1 || !strings.Contains(events[0].Message, "raise kernel.pid_max") || !strings.HasSuffix(events[0].Message, consumersText) {
		t.Errorf("events = %+v, want the remedy and the consumers", events)
	}
}

// TestConsumersAreClippedFirst: a message over the bound loses the
// consumers, never the numbers and the remedy before them.
func TestConsumersAreClippedFirst(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.MaxMessage = 160
	c := New(cfg, testclock.NewFakeClock(t0))
	long := make([]headroom.Consumer, 5)
	for i := range long {
		long[i] = headroom.Consumer{Kind: headroom.ConsumerProcess, Name: strings.Repeat("x", 40), Tasks: 100}
	}
	c.ObserveConsumers(long)
	c.Record(node(28000))
	cond, _ := c.Evaluate()
	if len(cond.Message) > 160 || !strings.Contains(cond.Message, "raise kernel.pid_max") {
		t.Errorf("message (%d bytes) = %q", len(cond.Message), cond.Message)
	}
}

// TestPeakAround: a line is judged against the samples around the time it
// was written, not against the latest sample when it is read late.
func TestPeakAround(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	c.Record(node(1000))
	clk.Step(2 * time.Second)
	c.Record(node(32468)) // the storm's peak, at t0+2s
	clk.Step(2 * time.Second)
	c.Record(node(1200))
	clk.Step(20 * time.Second)
	c.Record(node(1000)) // the storm is over when the late line is read
	tests := []struct {
		name  string
		at    time.Time
		want  uint64
		found bool
	}{
		{name: "at the peak", at: t0.Add(2 * time.Second), want: 32468, found: true},
		{name: "just after the peak", at: t0.Add(5 * time.Second), want: 32468, found: true},
		{name: "long after", at: t0.Add(24 * time.Second), want: 1000, found: true},
		{name: "no sample near", at: t0.Add(-time.Hour)},
	}
	for _, tt := range tests {
		n, ok := c.PeakAround(tt.at, 4*time.Second)
		if ok != tt.found || (ok && n.Tasks != tt.want) {
			t.Errorf("%s: PeakAround = %d, %v; want %d, %v", tt.name, n.Tasks, ok, tt.want, tt.found)
		}
	}
}

// TestZombieCensusTrend: each census announces the parents at the
// threshold with how their zombies moved since the census before.
func TestZombieCensusTrend(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	parent := func(n uint64) []headroom.ZombieParent {
		return []headroom.ZombieParent{{PID: 900, Comm: "probe-runner", Zombies: n, Pod: &headroom.Pod{Namespace: "default", Name: "web"}}}
	}
	c.ObserveZombies(parent(10)) // below the threshold of 50
	if _, events := c.Evaluate(); len(events) != 0 {
		t.Fatalf("below the threshold: %+v", events)
	}
	clk.Step(time.Minute)
	c.ObserveZombies(parent(80))
	_, events := c.Evaluate()
	want := "probe-runner (pid 900, pod default/web) holds 80 zombie processes (up 70 in 1m0s), each taking a PID"
	if len(events) != 1 || events[0].Reason != EventZombiesAccumulating || !strings.HasPrefix(events[0].Message, want) {
		t.Fatalf("events = %+v, want %q", events, want)
	}
	// Still growing a minute later: the same subject, counted, announced
	// again once the event interval has passed, with the new trend.
	clk.Step(time.Minute)
	c.ObserveZombies(parent(95))
	if _, events := c.Evaluate(); len(events) != 0 {
		t.Fatalf("within the interval: %+v", events)
	}
	clk.Step(5 * time.Minute)
	c.ObserveZombies(parent(140))
	_, events = c.Evaluate()
	if len(events) != 1 || !strings.Contains(events[0].Message, "holds 140 zombie processes (up 45 in 5m0s)") || events[0].Count != 3 {
		t.Errorf("events = %+v", events)
	}
}
