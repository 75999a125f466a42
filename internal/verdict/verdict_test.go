package verdict

import (
	"fmt"
	"strings"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// node returns a node at tasks of pid_max 32768 (32468 usable).
func node(tasks uint64) headroom.Node {
	n := headroom.Node{Tasks: tasks, PIDMax: 32768, ThreadsMax: 249047, LastPID: 30000, PIDLimit: 32468, Limit: 32468, Binding: headroom.BindingPIDMax}
	n.UsedPercent = float64(tasks) * 100 / float64(n.Limit)
	return n
}

func newC(t *testing.T) (*Correlator, *testclock.FakeClock) {
	t.Helper()
	clk := testclock.NewFakeClock(t0)
	return New(DefaultConfig(), clk), clk
}

func nodeFailure(n headroom.Node) Failure {
	return Failure{
		Class: signature.ClassThread, Signature: "GoThreadCreateFailed", Trust: logline.TrustAttributed,
		Who:         "kubelet (pid 3124, kubelet.service)",
		Attribution: headroom.Attribution{Layer: headroom.LayerNode, Limit: "pid_max", Used: n.Tasks, Max: n.Limit, Node: n},
	}
}

func TestStartsFalse(t *testing.T) {
	t.Parallel()
	c, _ := newC(t)
	cond, events := c.Evaluate()
	if cond.Status || cond.Reason != ReasonSufficient || cond.Type != "PIDPressureRisk" || !cond.LastTransitionTime.Equal(t0) || len(events) != 0 {
		t.Errorf("initial = %+v, %v", cond, events)
	}
	c.Record(node(900))
	if cond, _ := c.Evaluate(); cond.Status || !strings.Contains(cond.Message, "node tasks 900 of 32468 usable") || strings.Contains(cond.Message, "raise") {
		t.Errorf("healthy = %+v; want the numbers and no remedy", cond)
	}
}

// TestHeadroomLowAndHysteresis walks the condition through warning,
// message updates, the hysteresis band and the quiet period.
func TestHeadroomLowAndHysteresis(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	c.Record(node(28000)) // 86 %
	cond, _ := c.Evaluate()
	if !cond.Status || cond.Reason != ReasonLow || !cond.LastTransitionTime.Equal(t0) {
		t.Fatalf("at 86 %%: %+v", cond)
	}
	if !strings.Contains(cond.Message, "binding limit kernel.pid_max=32768") || !strings.Contains(cond.Message, "raise kernel.pid_max (e.g. 4194304)") {
		t.Errorf("message %q lacks the limit or the remedy", cond.Message)
	}
	clk.Step(time.Minute)
	c.Record(node(28500))
	cond, _ = c.Evaluate()
	if !cond.LastTransitionTime.Equal(t0) || !strings.Contains(cond.Message, "28500") {
		t.Errorf("a message update moved the transition time or kept the old numbers: %+v", cond)
	}
	// 82 %: below warning, above recovery: stays True.
	clk.Step(time.Minute)
	c.Record(node(26600))
	if cond, _ = c.Evaluate(); !cond.Status || !strings.HasPrefix(cond.Message, "recovering") {
		t.Errorf("in the hysteresis band: %+v", cond)
	}
	// 60 %, but the quiet period has not passed.
	clk.Step(time.Minute)
	c.Record(node(19500))
	if cond, _ = c.Evaluate(); !cond.Status {
		t.Errorf("cleared before the quiet period: %+v", cond)
	}
	clk.Step(5 * time.Minute)
	c.Record(node(19500))
	cond, _ = c.Evaluate()
	if cond.Status || cond.Reason != ReasonSufficient || !cond.LastTransitionTime.Equal(clk.Now()) {
		t.Errorf("after the quiet period: %+v", cond)
	}
}

// TestExhaustedNeedsAgreement: a failure turns the condition True only when
// its attribution (headroom or a counter) agrees; log text alone never does,
// and a forged line counts for nothing but an Event.
func TestExhaustedNeedsAgreement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		failure    func(n headroom.Node) Failure
		wantStatus bool
		wantEvent  EventReason
	}{
		{name: "node at its limit", failure: nodeFailure, wantStatus: true, wantEvent: EventThreadCreationFailed},
		{name: "limit not identified", failure: func(n headroom.Node) Failure {
			f := nodeFailure(n)
			f.Attribution = headroom.Attribution{Layer: headroom.LayerNone, Reason: "no limit at its maximum", Node: n}
			return f
		}, wantEvent: EventThreadCreationFailed},
		{name: "forged kernel message", failure: func(n headroom.Node) Failure {
			f := nodeFailure(n)
			f.Trust, f.Signature, f.Class = logline.TrustForged, "PidsControllerForkRejected", signature.ClassProcess
			return f
		}, wantEvent: EventProcessCreationFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newC(t)
			n := node(1000)
			c.Record(n)
			c.Observe(tt.failure(node(32460)))
			cond, events := c.Evaluate()
			if cond.Status != tt.wantStatus {
				t.Errorf("status = %v (%s: %s), want %v", cond.Status, cond.Reason, cond.Message, tt.wantStatus)
			}
			if tt.wantStatus && (cond.Reason != ReasonExhausted || !strings.Contains(cond.Message, "kubelet (pid 3124, kubelet.service) cannot create threads: node tasks 32460 of 32468 usable")) {
				t.Errorf("exhausted condition = %+v", cond)
			}
			if len(events) != 1 || events[0].Reason != tt.wantEvent || events[0].Count != 1 {
				t.Errorf("events = %+v, want one %s", events, tt.wantEvent)
			}
		})
	}
}

func TestExhaustedEndsAfterFailureWindowAndQuiet(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	c.Record(node(1000))
	c.Observe(nodeFailure(node(32460)))
	if cond, _ := c.Evaluate(); cond.Reason != ReasonExhausted {
		t.Fatalf("%+v", cond)
	}
	clk.Step(3 * time.Minute) // past the failure window: no reason now, but quiet period running
	c.Record(node(1000))
	if cond, _ := c.Evaluate(); !cond.Status || cond.Reason != ReasonExhausted {
		t.Errorf("during the quiet period: %+v (the reason stays, the message says recovering)", cond)
	}
	clk.Step(5 * time.Minute)
	if cond, _ := c.Evaluate(); cond.Status {
		t.Errorf("after the quiet period: %+v", cond)
	}
}

func cgroupFailure(kind, path, unit string, pod *headroom.Pod) Failure {
	return Failure{
		Trust: logline.TrustKernel,
		Attribution: headroom.Attribution{Layer: headroom.LayerCgroup, Limit: "pids.max", Cgroup: &headroom.Cgroup{
			Path: path, Kind: headroom.Kind(kind), Unit: unit, Pod: pod, Current: 512, Max: headroom.Finite(512), Refused: 37, AtLimit: true,
		}},
	}
}

func TestPodAtItsLimitIsAnEventOnly(t *testing.T) {
	t.Parallel()
	c, _ := newC(t)
	c.Record(node(2000))
	c.Observe(cgroupFailure("pod", "/kubepods.slice/kubepods-pod1.slice", "", &headroom.Pod{UID: "1", Namespace: "payments", Name: "api-0"}))
	cond, events := c.Evaluate()
	if cond.Status {
		t.Errorf("a pod at its own limit turned the node condition True: %+v", cond)
	}
	if len(events) != 1 || events[0].Reason != EventPodPIDsLimitReached || events[0].Subject != "payments/api-0" || !strings.Contains(events[0].Message, "reached its pids limit (pids.max 512 of /kubepods.slice/kubepods-pod1.slice): 37 forks refused") {
		t.Errorf("events = %+v", events)
	}
}

func TestNodeComponentAtItsLimit(t *testing.T) {
	t.Parallel()
	c, _ := newC(t)
	c.Record(node(2000))
	c.Observe(cgroupFailure("unit", "/system.slice/kubelet.service", "kubelet.service", nil))
	cond, events := c.Evaluate()
	if !cond.Status || cond.Reason != ReasonExhausted || !strings.Contains(cond.Message, "kubelet.service reached its TasksMax (pids.max 512 of /system.slice/kubelet.service)") || !strings.Contains(cond.Message, "TasksMax=infinity") {
		t.Errorf("condition = %+v", cond)
	}
	if len(events) != 1 || events[0].Reason != EventUnitTasksMaxReached || events[0].Subject != "kubelet.service" {
		t.Errorf("events = %+v", events)
	}
}

// TestStormIsAggregated: 10,000 failures of one subject within an interval
// produce one Event at once and one aggregated Event per interval after.
func TestStormIsAggregated(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	c.Record(node(2000))
	var all []Event
	for i := 0; i < 10000; i++ {
		c.Observe(cgroupFailure("pod", "/kubepods.slice/pod1", "", &headroom.Pod{UID: "1", Namespace: "ns", Name: "bomb"}))
		if i%500 == 0 {
			clk.Step(time.Second)
			_, ev := c.Evaluate()
			all = append(all, ev...)
		}
	}
	clk.Step(5 * time.Minute)
	_, ev := c.Evaluate()
	all = append(all, ev...)
	if len(all) != 2 {
		t.Fatalf("%d events for a storm of 10,000: %+v", len(all), all)
	}
	if all[0].Count != 1 || all[1].Count != 10000 || !strings.Contains(all[1].Message, "10000 times since") {
		t.Errorf("counts %d, %d; message %q", all[0].Count, all[1].Count, all[1].Message)
	}
	if got, want := c.Tally()[EventPodPIDsLimitReached], (Tally{Announced: 1, Aggregated: 9999, Summaries: 1}); got != want {
		t.Errorf("tally %+v, want %+v", got, want)
	}
	// Quiet for two intervals: the next occurrence is news again.
	clk.Step(11 * time.Minute)
	c.Evaluate()
	c.Observe(cgroupFailure("pod", "/kubepods.slice/pod1", "", &headroom.Pod{UID: "1", Namespace: "ns", Name: "bomb"}))
	if _, ev := c.Evaluate(); len(ev) != 1 || ev[0].Count != 1 {
		t.Errorf("after a long quiet: %+v", ev)
	}
}

func TestManySubjectsAreCapped(t *testing.T) {
	t.Parallel()
	c, _ := newC(t)
	c.Record(node(2000))
	for i := 0; i < 100; i++ {
		c.Observe(cgroupFailure("pod", fmt.Sprintf("/kubepods.slice/pod%d", i), "", &headroom.Pod{UID: fmt.Sprint(i), Namespace: "ns", Name: fmt.Sprintf("p%d", i)}))
	}
	_, events := c.Evaluate()
	if len(events) != DefaultConfig().MaxSubjects+1 || events[len(events)-1].Subject != "other subjects" {
		t.Errorf("%d events for 100 pods, want %d (the cap plus one folded): last %+v", len(events), DefaultConfig().MaxSubjects+1, events[len(events)-1])
	}
}

func TestPrediction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		series func(i int) uint64 // tasks at minute i, 0..10
		want   Reason
	}{
		{name: "steady growth reaches the limit in ~11 min", series: func(i int) uint64 { return 20000 + uint64(i)*600 }, want: ReasonPredicted},
		{name: "noise around a flat line", series: func(i int) uint64 { return 20000 + uint64((i%2)*600) }, want: ReasonSufficient},
		{name: "tiny numbers", series: func(i int) uint64 { return 100 + uint64(i)*20 }, want: ReasonSufficient},
		{name: "growth too slow for the horizon", series: func(i int) uint64 { return 10000 + uint64(i)*60 }, want: ReasonSufficient},
		{name: "shrinking", series: func(i int) uint64 { return 26000 - uint64(i)*600 }, want: ReasonSufficient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, clk := newC(t)
			for i := 0; i <= 10; i++ {
				c.Record(node(tt.series(i)))
				if i < 10 {
					clk.Step(time.Minute)
				}
			}
			cond, _ := c.Evaluate()
			if cond.Reason != tt.want {
				t.Errorf("reason %s (%s), want %s", cond.Reason, cond.Message, tt.want)
			}
			if tt.want == ReasonPredicted && !strings.Contains(cond.Message, "reached in about 11m") {
				t.Errorf("message %q", cond.Message)
			}
		})
	}
}

func TestPriority(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	for i := 0; i <= 10; i++ { // growing and above warning: predicted beats low
		c.Record(node(27600 + uint64(i)*400))
		if i < 10 {
			clk.Step(time.Minute)
		}
	}
	if cond, _ := c.Evaluate(); cond.Reason != ReasonPredicted {
		t.Errorf("growing above warning: %s", cond.Reason)
	}
	ltt := c.Condition().LastTransitionTime
	c.Observe(nodeFailure(node(32460))) // exhausted beats predicted
	if cond, _ := c.Evaluate(); cond.Reason != ReasonExhausted || !cond.LastTransitionTime.Equal(ltt) {
		t.Errorf("with a failure: %+v (reason changes, transition time does not)", cond)
	}
}

func TestZombiesAndAudit(t *testing.T) {
	t.Parallel()
	c, _ := newC(t)
	c.ObserveZombies([]headroom.ZombieParent{{PID: 4090, Comm: "tini", Zombies: 120, Pod: &headroom.Pod{Namespace: "ns", Name: "p"}}, {PID: 5, Comm: "ok", Zombies: 2}})
	c.ObserveAudit([]headroom.Finding{{Severity: headroom.SeverityWarning, Check: "PIDMaxLow", Message: "kernel.pid_max is 32768", Remedy: "raise it"}, {Severity: headroom.SeverityInfo, Check: "ThreadsMaxBinding", Message: "m", Remedy: "r"}})
	_, events := c.Evaluate()
	if len(events) != 3 {
		t.Fatalf("events = %+v", events)
	}
	if events[0].Reason != EventZombiesAccumulating || !strings.Contains(events[0].Message, "tini (pid 4090, pod ns/p) holds 120 zombie") {
		t.Errorf("zombie event %+v", events[0])
	}
	if events[1].Reason != EventPIDLimitMisconfigured || !events[1].Warning || events[2].Warning {
		t.Errorf("audit events %+v", events[1:])
	}
}

// TestAuditIsAStateNotAnOccurrence: each unit the audit finds wanting is
// its own Event; the audit of an agent restarted from the last one's
// snapshot counts nothing again, so no "2 times since" Event follows (the
// real node made one at each restart of the agent's pod).
func TestAuditIsAStateNotAnOccurrence(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	audit := func(tasks int) []headroom.Finding {
		return []headroom.Finding{
			{Severity: headroom.SeverityWarning, Check: "UnitTasksMaxFinite", Subject: "containerd.service", Message: fmt.Sprintf("containerd.service has TasksMax (pids.max) 23 with %d tasks", tasks)},
			{Severity: headroom.SeverityWarning, Check: "UnitTasksMaxFinite", Subject: "kubelet.service", Message: "kubelet.service has TasksMax (pids.max) 3554 with 13 tasks"},
			{Severity: headroom.SeverityWarning, Check: "PIDEvictionThresholdUnset", Message: "kubelet has no pid.available eviction threshold"},
		}
	}
	c.ObserveAudit(audit(21))
	_, events := c.Evaluate()
	if len(events) != 3 || !strings.HasPrefix(events[0].Message, "containerd.service") || !strings.HasPrefix(events[1].Message, "kubelet.service") {
		t.Fatalf("first audit: %+v", events)
	}
	snap := c.Snapshot()
	clk.Step(time.Minute)
	c2 := New(DefaultConfig(), clk)
	c2.Restore(snap)
	c2.ObserveAudit(audit(22))
	for range 3 {
		clk.Step(5 * time.Minute)
		if _, ev := c2.Evaluate(); len(ev) != 0 {
			t.Fatalf("after the restart's audit: %+v", ev)
		}
	}
}

func TestMessagesAreBoundedAndSanitized(t *testing.T) {
	t.Parallel()
	c, _ := newC(t)
	f := nodeFailure(node(32460))
	f.Who = "evil\x1b[31m\n" + strings.Repeat("x", 5000)
	c.Observe(f)
	cond, events := c.Evaluate()
	for _, s := range []string{cond.Message, events[0].Message} {
		if len(s) > DefaultConfig().MaxMessage || strings.ContainsAny(s, "\x1b\n") {
			t.Errorf("message of %d bytes, with controls: %q…", len(s), s[:40])
		}
	}
}

// TestRestartNeitherFlipsNorReannounces: a correlator restored from a
// snapshot keeps the condition and its transition time, and does not
// announce again what was announced within the interval.
func TestRestartNeitherFlipsNorReannounces(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	c.Record(node(1000))
	c.Observe(cgroupFailure("unit", "/system.slice/kubelet.service", "kubelet.service", nil))
	cond, events := c.Evaluate()
	if !cond.Status || len(events) != 1 {
		t.Fatalf("before restart: %+v, %v", cond, events)
	}
	snap := c.Snapshot()

	clk.Step(30 * time.Second)
	c2 := New(DefaultConfig(), clk)
	c2.Restore(snap)
	c2.Record(node(1000))
	c2.Observe(cgroupFailure("unit", "/system.slice/kubelet.service", "kubelet.service", nil))
	cond2, events2 := c2.Evaluate()
	if !cond2.Status || !cond2.LastTransitionTime.Equal(cond.LastTransitionTime) || cond2.Reason != cond.Reason {
		t.Errorf("after restart: %+v, want the same condition and transition time as %+v", cond2, cond)
	}
	if len(events2) != 0 {
		t.Errorf("re-announced after restart: %+v", events2)
	}
	// The repeat is counted and announced at the end of the interval.
	clk.Step(5 * time.Minute)
	if _, ev := c2.Evaluate(); len(ev) != 1 || ev[0].Count != 2 {
		t.Errorf("after the interval: %+v", ev)
	}
	c3 := New(DefaultConfig(), clk)
	c3.Restore(Snapshot{Condition: Condition{Type: "Other"}})
	if c3.Condition().Status {
		t.Error("a snapshot of another condition type was taken")
	}
}

// TestUnitThatDiedOfItsLimit: the failing process took its tasks with it,
// so the unit is below its TasksMax by the time the line is read; the
// message reads the same either way (only the numbers differ), and never
// claims that "0 of 12" tasks are at the limit.
func TestUnitThatDiedOfItsLimit(t *testing.T) {
	cg := &headroom.Cgroup{Path: "/system.slice/kubelet.service", Kind: "unit", Unit: "kubelet.service", Current: 0, Max: headroom.Limit{Value: 12}, Refused: 20}
	if got, want := atLimit(cg, "TasksMax"), "reached its TasksMax (pids.max 12 of /system.slice/kubelet.service): 20 forks refused, 0 tasks now"; got != want {
		t.Errorf("atLimit = %q, want %q", got, want)
	}
}

// TestPeakOfRecentSamples: a failure is attributed to the fullest node
// sample of the last span, because the process that failed often freed its
// tasks before its line was read; older samples do not count.
func TestPeakOfRecentSamples(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	if _, ok := c.Peak(2 * time.Second); ok {
		t.Error("a peak before any sample")
	}
	full := headroom.Node{Tasks: 499, Limit: 499}
	calm := headroom.Node{Tasks: 23, Limit: 499}
	c.Record(full)
	clk.Step(1500 * time.Millisecond)
	c.Record(calm)
	if got, ok := c.Peak(2 * time.Second); !ok || got.Tasks != 499 {
		t.Errorf("peak 1.5 s after a full sample = %d tasks (%v), want 499", got.Tasks, ok)
	}
	clk.Step(time.Second) // the full sample is now 2.5 s old
	c.Record(calm)
	if got, _ := c.Peak(2 * time.Second); got.Tasks != 23 {
		t.Errorf("peak 2.5 s after a full sample = %d tasks, want 23 (older than the span)", got.Tasks)
	}
}

// TestRecoveringSaysWhatIsAwaited: while a True condition has no reason to
// stay True, its message says what it still waits for — the rest of the
// quiet period, usage below the recovery threshold, or both — and never a
// negative countdown once the quiet period is over.
func TestRecoveringSaysWhatIsAwaited(t *testing.T) {
	t.Parallel()
	const in82 = "node tasks 26600 of 32468 usable (82%), binding limit kernel.pid_max=32768"
	const in60 = "node tasks 19500 of 32468 usable (60%), binding limit kernel.pid_max=32768"
	tests := []struct {
		name  string
		after time.Duration // since usage fell below the warning threshold
		tasks uint64
		want  string
	}{
		{name: "in the band, quiet period running", after: 2 * time.Minute, tasks: 26600,
			want: "recovering: " + in82 + "; clears once usage is below 80 %, in 3m0s at the earliest"},
		{name: "in the band, quiet period over", after: 6 * time.Minute, tasks: 26600,
			want: "recovering: " + in82 + "; the quiet period (5m0s) is over: clears once usage is below 80 %"},
		{name: "in the band, long after", after: time.Hour, tasks: 26600,
			want: "recovering: " + in82 + "; the quiet period (5m0s) is over: clears once usage is below 80 %"},
		{name: "below recovery, quiet period running", after: 90 * time.Second, tasks: 19500,
			want: "recovering: " + in60 + "; clears in 3m30s if usage stays below 80 %"},
		{name: "below recovery, a fraction of a second left", after: 5*time.Minute - 300*time.Millisecond, tasks: 19500,
			want: "recovering: " + in60 + "; clears in 1s if usage stays below 80 %"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, clk := newC(t)
			c.Record(node(28000)) // 86 %: True
			if cond, _ := c.Evaluate(); !cond.Status {
				t.Fatalf("at 86 %%: %+v", cond)
			}
			clk.Step(tt.after)
			c.Record(node(tt.tasks))
			cond, _ := c.Evaluate()
			if !cond.Status || cond.Reason != ReasonLow {
				t.Fatalf("cleared or changed reason: %+v", cond)
			}
			if cond.Message != tt.want {
				t.Errorf("message mismatch:\n got %q\nwant %q", cond.Message, tt.want)
			}
		})
	}
}

// TestRecoveringWithoutASample: a node component's failure with no headroom
// sample yet cannot clear, and the message says it waits for a sample.
func TestRecoveringWithoutASample(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	c.Observe(cgroupFailure("unit", "/system.slice/kubelet.service", "kubelet.service", nil))
	if cond, _ := c.Evaluate(); cond.Reason != ReasonExhausted {
		t.Fatalf("%+v", cond)
	}
	for _, tt := range []struct {
		step time.Duration
		want string
	}{
		{step: 3 * time.Minute, want: "recovering: no headroom sample yet; clears once a headroom sample shows usage below 80 %, in 2m0s at the earliest"},
		{step: 10 * time.Minute, want: "recovering: no headroom sample yet; the quiet period (5m0s) is over: clears once a headroom sample shows usage below 80 %"},
	} {
		clk.Step(tt.step)
		if cond, _ := c.Evaluate(); !cond.Status || cond.Message != tt.want {
			t.Errorf("after %s: %+v, want the message %q", tt.step, cond, tt.want)
		}
	}
}

// TestKernelCountLeadsTheNodeMessage: counted failures at a node limit add
// up within the failure window and lead the message; a log line in the
// same window keeps the count; after a quiet window the count starts over.
func TestKernelCountLeadsTheNodeMessage(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	n := node(32468)
	c.Record(n)
	counted := func(k uint64) Failure {
		f := nodeFailure(n)
		f.Signature, f.Trust, f.Counted, f.Who = "", logline.TrustKernel, k, "bash (pid 7)"
		return f
	}
	c.Observe(counted(1))
	if cond, _ := c.Evaluate(); !cond.Status || cond.Reason != ReasonExhausted || !strings.Contains(cond.Message, "bash (pid 7) cannot create threads: the kernel counted 1 refused creation; node tasks") {
		t.Fatalf("after one counted failure: %+v", cond)
	}
	clk.Step(time.Second)
	c.Observe(counted(215))
	c.Observe(nodeFailure(n)) // a log line: the count stays
	if cond, _ := c.Evaluate(); !strings.Contains(cond.Message, "the kernel counted 216 refused creations;") {
		t.Fatalf("after 216 counted and a line: %s", cond.Message)
	}
	clk.Step(DefaultConfig().FailureWindow + time.Second)
	c.Observe(counted(3))
	if cond, _ := c.Evaluate(); !strings.Contains(cond.Message, "the kernel counted 3 refused creations;") {
		t.Fatalf("a window later, the count must start over: %s", cond.Message)
	}
}

// TestWriteBudgetBoundsAStorm: 30 minutes of failures from 30 pods (a new
// one each minute for the first 30 s of the storm, then all of them every
// 2 s) and a start-up audit. Whatever window of 10 minutes is taken, at
// most 10 Events of failures are written; the audit's findings are written
// at once and not counted; no occurrence is lost (the last Event of each
// subject counts them all, the ones folded into "other subjects"
// included); and a restart keeps the budget spent.
func TestWriteBudgetBoundsAStorm(t *testing.T) {
	t.Parallel()
	c, clk := newC(t)
	c.Record(node(2000))
	c.ObserveAudit([]headroom.Finding{{Check: "pid_max", Message: "kernel.pid_max is 32768", Severity: headroom.SeverityWarning}, {Check: "kubepods", Message: "/kubepods has no pids limit", Severity: headroom.SeverityWarning}})
	pod := func(i int) Failure {
		return cgroupFailure("pod", fmt.Sprintf("/kubepods.slice/pod%d", i), "", &headroom.Pod{UID: fmt.Sprint(i), Namespace: "ns", Name: fmt.Sprintf("p%d", i)})
	}
	type write struct {
		at time.Time
		ev Event
	}
	var writes []write
	occurred := map[string]uint64{}
	last := map[string]Event{}
	evaluate := func() {
		_, evs := c.Evaluate()
		for _, e := range evs {
			writes = append(writes, write{clk.Now(), e})
			last[e.Subject] = e
		}
	}
	for s := 0; s < 30*60; s += 2 {
		if s == 15*60 { // a restart in the middle of the storm
			snap := c.Snapshot()
			c = New(DefaultConfig(), clk)
			c.Restore(snap)
			c.Record(node(2000))
		}
		for i := range min(30, 1+s/2) {
			c.Observe(pod(i))
			occurred[fmt.Sprintf("ns/p%d", i)]++ // the subject: the pod
		}
		evaluate()
		clk.Step(2 * time.Second)
	}
	// The storm ends; what is pending goes out as the budget refills.
	for range 60 {
		clk.Step(time.Minute)
		evaluate()
	}

	audit := 0
	var storm []time.Time
	for _, w := range writes {
		if w.ev.Reason == EventPIDLimitMisconfigured {
			audit++
			if !w.at.Equal(t0) {
				t.Errorf("an audit finding was written at %v, not at once", w.at.Sub(t0))
			}
			continue
		}
		storm = append(storm, w.at)
	}
	if audit != 2 {
		t.Errorf("%d audit Events, want 2", audit)
	}
	for i := range storm {
		in := 0
		for _, at := range storm[i:] {
			if at.Sub(storm[i]) < 10*time.Minute {
				in++
			}
		}
		if in > 10 {
			t.Fatalf("%d Events of failures in the 10 minutes from %v", in, storm[i].Sub(t0))
		}
	}
	var counted, total uint64
	for who, n := range occurred {
		total += n
		if e, ok := last[who]; ok {
			counted += uint64(e.Count)
		}
	}
	if e, ok := last["other subjects"]; ok {
		counted += uint64(e.Count)
	}
	if counted != total {
		t.Errorf("the last Events count %d occurrences of %d", counted, total)
	}
	if len(storm) < 10 {
		t.Errorf("only %d Events of failures in 90 minutes", len(storm))
	}
	t.Logf("%d Events of failures over the 30-minute storm and the hour after, %d audit findings; first at %v", len(storm), audit, storm[0].Sub(t0))
}
