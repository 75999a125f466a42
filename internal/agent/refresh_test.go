package agent

import (
	"path/filepath"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

type recordingSink struct {
	conditions, refreshes []verdict.Condition
}

func (s *recordingSink) Condition(c verdict.Condition) { s.conditions = append(s.conditions, c) }
func (s *recordingSink) Event(verdict.Event)           {}
func (s *recordingSink) Refresh(c verdict.Condition)   { s.refreshes = append(s.refreshes, c) }

func nodeAt(tasks uint64) headroom.Node {
	n := headroom.Node{Tasks: tasks, PIDMax: 32768, ThreadsMax: 249047, LastPID: 30000, PIDLimit: 32468, Limit: 32468, Binding: headroom.BindingPIDMax}
	n.UsedPercent = float64(tasks) * 100 / float64(n.Limit)
	return n
}

// TestRefreshWhenTheNumbersMove: a True condition whose numbers move by a
// point or more is refreshed (at most every refreshEvery), without a
// transition; small moves are not news.
func TestRefreshWhenTheNumbersMove(t *testing.T) {
	t.Parallel()
	clk := testclock.NewFakeClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	sink := &recordingSink{}
	d := NewDetector(DetectorConfig{Verdict: verdict.DefaultConfig()}, nil, clk, quietLog(), sink)
	step := func(tasks uint64, after time.Duration) {
		clk.Step(after)
		d.corr.Record(nodeAt(tasks))
		d.evaluate()
	}
	step(28000, 0) // 86 %: True, PIDHeadroomLow
	if len(sink.conditions) != 1 || !sink.conditions[0].Status {
		t.Fatalf("conditions = %+v", sink.conditions)
	}
	step(28100, time.Minute) // +0.3 point: not material
	step(29000, time.Second) // +3 points, within refreshEvery of nothing sent since: material
	step(29500, time.Second) // material, but within refreshEvery of the last refresh
	step(29500, refreshEvery)
	if len(sink.conditions) != 1 {
		t.Errorf("a refresh was delivered as a change: %d conditions", len(sink.conditions))
	}
	if len(sink.refreshes) != 2 {
		t.Fatalf("refreshes = %d, want 2: %+v", len(sink.refreshes), sink.refreshes)
	}
	first := sink.conditions[0]
	for _, r := range sink.refreshes {
		if r.Reason != first.Reason || !r.LastTransitionTime.Equal(first.LastTransitionTime) {
			t.Errorf("refresh %+v moved the state of %+v", r, first)
		}
	}
	if want := "node tasks 29500 of 32468"; !contains(sink.refreshes[1].Message, want) {
		t.Errorf("last refresh %q, want %q", sink.refreshes[1].Message, want)
	}
}

func TestMaterially(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		sent, now       string
		sentPct, nowPct float64
		want            bool
	}{
		{name: "same", sent: "a 1", now: "a 1", want: false},
		{name: "digits, under a point", sent: "node tasks 100 (86%)", now: "node tasks 110 (86%)", sentPct: 86.1, nowPct: 86.4, want: false},
		{name: "digits, a point", sent: "node tasks 100 (86%)", now: "node tasks 400 (87%)", sentPct: 86.1, nowPct: 87.1, want: true},
		{name: "a countdown", sent: "recovering: clears in 3m10s", now: "recovering: clears in 2m50s", sentPct: 70, nowPct: 70, want: false},
		{name: "other words", sent: "node tasks 1; top consumers: bash (pid 1) 1 tasks", now: "node tasks 1; top consumers: java (pid 1) 1 tasks", want: true},
	}
	for _, tt := range tests {
		if got := materially(tt.sent, tt.now, tt.sentPct, tt.nowPct); got != tt.want {
			t.Errorf("%s: materially() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestTransitionNamesCurrentConsumers: a transition to True is written with
// the top consumers counted at that moment, not those of an older census:
// the message reaches the Node once, and a later refresh only with NPD's
// heartbeat. On the fake host at 97 % of pid_max the kubelet is the
// consumer; the census of a minute ago named a pod since gone.
func TestTransitionNamesCurrentConsumers(t *testing.T) {
	t.Parallel()
	root := hostfs.New(filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct"))
	hs, err := headroom.Hierarchies(root)
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.NewFakeClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	sink := &recordingSink{}
	d := NewDetector(DetectorConfig{Sources: Config{Root: root}, Verdict: verdict.DefaultConfig()}, nil, clk, quietLog(), sink)
	d.hs = hs
	// The census of a minute ago: a pod since gone.
	d.censusAt = clk.Now()
	d.corr.ObserveConsumers([]headroom.Consumer{{Kind: headroom.ConsumerPod, Name: "pod default/gone", Tasks: 900}})
	clk.Step(time.Minute)
	d.corr.Record(nodeAt(31616))
	d.evaluate()
	if len(sink.conditions) != 1 || !sink.conditions[0].Status {
		t.Fatalf("conditions = %+v", sink.conditions)
	}
	if msg := sink.conditions[0].Message; contains(msg, "default/gone") || !contains(msg, "top consumers: ") || !contains(msg, "kubelet") {
		t.Errorf("the transition's message does not name the consumers of now: %s", msg)
	}
}
