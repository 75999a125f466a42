package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/node-problem-detector/cmd/options"
	"k8s.io/node-problem-detector/pkg/types"
	"k8s.io/utils/clock"
	testclock "k8s.io/utils/clock/testing"
)

// stepClock is a fake clock whose tickers the test drives by hand through
// an unbuffered channel: a tick is handed over only when the condition
// manager's loop takes it, so the next hand-over proves the previous tick
// was handled. Time moves only with Step.
type stepClock struct {
	*testclock.FakeClock
	tickers chan chan time.Time
}

type handTicker struct{ c chan time.Time }

func (h handTicker) C() <-chan time.Time { return h.c }
func (h handTicker) Stop()               {}

func (s *stepClock) NewTicker(time.Duration) clock.Ticker {
	c := make(chan time.Time)
	s.tickers <- c
	return handTicker{c: c}
}

// countingClient is the Node's end of NPD's problem client: it counts the
// writes of the conditions and keeps the last one.
type countingClient struct {
	mu     sync.Mutex
	writes int
	last   []v1.NodeCondition
	// want is the newest message given when a write happens; missed
	// counts the writes that carried another. Both are judged at the
	// write, under mu: NPD's loop may write while the test moves on.
	want       string
	missed     int
	missedWhat []string
}

func (c *countingClient) GetConditions(context.Context, []v1.NodeConditionType) ([]*v1.NodeCondition, error) {
	return nil, nil
}

func (c *countingClient) SetConditions(_ context.Context, conditions []v1.NodeCondition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	c.last = append([]v1.NodeCondition(nil), conditions...)
	if c.want != "" && (len(conditions) == 0 || conditions[0].Message != c.want) {
		c.missed++
		c.missedWhat = append(c.missedWhat, fmt.Sprintf("wrote %q, newest %q", conditions[0].Message, c.want))
	}
	return nil
}

func (c *countingClient) Eventf(string, string, string, string, ...any) {}

func (c *countingClient) GetNode(context.Context) (*v1.Node, error) { return &v1.Node{}, nil }

// TestMessageRefreshRidesTheHeartbeat runs NPD's own condition manager
// (heartbeat 5 min) for 30 heartbeat periods while the message of a True
// condition moves every 10 s, and one transition half-way. The writes to
// the Node are exactly those of the same run without any refresh (the
// first, one per heartbeat, the transition), and each carries the newest
// message. Handing the refreshes to the manager directly, as NPD's exporter
// would, writes once per refresh.
func TestMessageRefreshRidesTheHeartbeat(t *testing.T) {
	t.Parallel()
	const (
		heartbeat = 5 * time.Minute
		periods   = 30
		every     = 10 * time.Second
	)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	run := func(refresh, naive bool) (writes int, last string, missed int) {
		clk := &stepClock{FakeClock: testclock.NewFakeClock(t0), tickers: make(chan chan time.Time)}
		client := &countingClient{}
		npdo := &options.NodeProblemDetectorOptions{K8sExporterHeartbeatPeriod: heartbeat, K8sExporterUpdateNodeConditions: true}
		e := newConditionExporterWith(&refreshingClient{Client: client}, clk, npdo)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.manager.Start(ctx)
		tick := <-clk.tickers
		transition := t0
		cond := func(status types.ConditionStatus, reason, msg string) *types.Status {
			return &types.Status{Source: "pid-pressure-monitor", Conditions: []types.Condition{{
				Type: "PIDPressureRisk", Status: status, Transition: transition, Reason: reason, Message: msg}}}
		}
		// give hands a message to the exporter, and tells the client it is
		// the newest from now on (before the exporter can write it).
		reason := "PIDHeadroomLow"
		give := func(msg string, direct bool) {
			client.mu.Lock()
			if !naive {
				client.want = msg
			}
			client.mu.Unlock()
			if direct {
				e.manager.UpdateCondition(cond(types.True, "PIDExhausted", msg).Conditions[0])
			} else {
				e.ExportProblems(cond(types.True, reason, msg))
			}
		}
		give("node tasks 28000 of 32468 usable (86%)", false)
		for s := 1; s <= periods*int(heartbeat/time.Second); s++ {
			clk.Step(time.Second)
			now := clk.Now()
			// Nothing is given on a heartbeat's second (a multiple of 300 s
			// before the transition, 5 s past one after it): NPD's loop
			// may still be judging the last tick when the clock steps,
			// and write the heartbeat before what this second gives.
			if s == periods*int(heartbeat/time.Second)/2+5 {
				transition, reason = now, "PIDExhausted"
				give("bash (pid 7) cannot create processes: node tasks 32460 of 32468 usable (100%)", false)
			} else if refresh && s%int(every/time.Second) == 3 {
				give(fmt.Sprintf("node tasks %d of 32468 usable", 28000+s), naive)
			}
			// The second hand-over completes only once the first tick was
			// handled (the manager is back at its select); the second tick
			// finds nothing due that the first did not.
			tick <- now
			tick <- now
		}
		client.mu.Lock()
		defer client.mu.Unlock()
		if client.missed > 0 {
			t.Log(client.missedWhat)
		}
		return client.writes, client.last[0].Message, client.missed
	}
	base, _, _ := run(false, false)
	if want := 1 + periods + 1; base < want-1 || base > want {
		t.Fatalf("without refreshes: %d writes, want about %d (first, heartbeats, transition)", base, want)
	}
	writes, last, missed := run(true, false)
	if writes != base {
		t.Errorf("with refreshes: %d writes, want %d, as without", writes, base)
	}
	if missed != 0 {
		t.Errorf("%d writes carried an old message", missed)
	}
	if last == "node tasks 28000 of 32468 usable (86%)" || last == "" {
		t.Errorf("last message written = %q: the refreshes never reached the Node", last)
	}
	naive, _, _ := run(true, true)
	if naive < 10*base {
		t.Errorf("refreshes handed to the manager directly: %d writes; the test cannot tell them from %d", naive, base)
	}
	t.Logf("writes over %d heartbeat periods: %d without refreshes, %d with a refresh every %v, %d if each refresh were written", periods, base, writes, every, naive)
}
