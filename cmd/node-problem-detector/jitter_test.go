package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/node-problem-detector/pkg/types"
	testclock "k8s.io/utils/clock/testing"
)

// TestFleetSpread shows the spread of 5,000 agents started in the same
// second: their first writes fan out over the 10 s window with no second
// holding much more than its tenth, and their heartbeats differ by up to
// 30 s, so that they drift further apart with each one.
func TestFleetSpread(t *testing.T) {
	t.Parallel()
	const nodes = 5000
	var perSecond [10]int
	minBeat, maxBeat := time.Hour, time.Duration(0)
	for i := range nodes {
		node := fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", i/250, i%250)
		d := firstWriteDelay(node)
		if d < 0 || d >= firstWriteSpread {
			t.Fatalf("%s: first write after %v, outside [0, %v)", node, d, firstWriteSpread)
		}
		perSecond[int(d/time.Second)]++
		b := jitteredHeartbeat(5*time.Minute, node)
		minBeat, maxBeat = min(minBeat, b), max(maxBeat, b)
		if again := firstWriteDelay(node); again != d {
			t.Fatalf("%s: the delay is not fixed for the node (%v, then %v)", node, d, again)
		}
	}
	for s, n := range perSecond {
		if n > nodes*13/100 {
			t.Errorf("second %d holds %d of %d first writes; want about a tenth", s, n, nodes)
		}
	}
	if minBeat < 5*time.Minute || maxBeat > 330*time.Second || maxBeat-minBeat < 25*time.Second {
		t.Errorf("heartbeats from %v to %v: want spread over [5m, 5m30s]", minBeat, maxBeat)
	}
	t.Logf("first writes per second of the 10 s window, of %d agents started together: %v; heartbeats %v to %v", nodes, perSecond, minBeat, maxBeat)
}

// TestStartGate: the manager starts after the node's delay, counted from
// when the apiserver answered, while nothing is wrong; and at once when a
// condition turns True before it, even while the apiserver is away.
func TestStartGate(t *testing.T) {
	t.Parallel()
	for _, urgent := range []bool{false, true} {
		t.Run(fmt.Sprintf("urgent=%v", urgent), func(t *testing.T) {
			t.Parallel()
			clk := testclock.NewFakeClock(time.Unix(0, 0))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var started atomic.Bool
			done := make(chan struct{})
			ready := make(chan struct{})
			g := newStartGate()
			g.open(ctx, clk, ready, 7*time.Second, func() { started.Store(true); close(done) })
			g.see(&types.Status{Conditions: []types.Condition{{Type: "PIDPressureRisk", Status: types.False}}})
			if urgent {
				g.see(&types.Status{Conditions: []types.Condition{{Type: "PIDPressureRisk", Status: types.True}}})
				<-done // neither the apiserver nor a clock step: True opens the gate
				return
			}
			clk.Step(time.Minute) // the apiserver is away: no delay runs yet
			if started.Load() {
				t.Fatal("started before the apiserver answered")
			}
			close(ready)
			for !clk.HasWaiters() {
				time.Sleep(time.Millisecond) // polling for the gate's timer
			}
			clk.Step(6 * time.Second)
			if started.Load() {
				t.Fatal("started before the delay with nothing wrong")
			}
			clk.Step(time.Second)
			<-done
		})
	}
}
