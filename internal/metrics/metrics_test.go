package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pidpressure/pidpressure/internal/agent"
	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	up := agent.SourceStat{Name: "journal", Enabled: true, Up: true}
	for _, tt := range []struct {
		name string
		v    agent.View
		want string // "" is healthy
	}{
		{"not sampled", agent.View{}, "not been sampled"},
		{"sampled, sources not started", agent.View{HasNode: true}, "sources have not started"},
		{"all up", agent.View{HasNode: true, Sources: []agent.SourceStat{up}}, ""},
		{"off", agent.View{HasNode: true, Sources: []agent.SourceStat{{Name: "kmsg"}}}, ""},
		{"unsupported here", agent.View{HasNode: true, Sources: []agent.SourceStat{{Name: "kmsg", Enabled: true, Unsupported: true, Err: "no /dev/kmsg"}}}, ""},
		{"down", agent.View{HasNode: true, Sources: []agent.SourceStat{up, {Name: "kmsg", Enabled: true, Err: "reading /dev/kmsg: EIO"}}}, "source kmsg is down: reading /dev/kmsg: EIO"},
	} {
		err := Health(tt.v)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v, want healthy", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// view is a detector state given as data.
type view struct{ v agent.View }

func (s view) View() agent.View           { return s.v }
func (s view) Cgroups() []headroom.Cgroup { return nil }

// TestCollect checks the series a state turns into: the prediction only
// while trusted, the headroom per limit, every event outcome present.
func TestCollect(t *testing.T) {
	t.Parallel()
	n := headroom.Node{Tasks: 30000, PIDMax: 32768, ThreadsMax: 100000, PIDLimit: 32468, Limit: 32468, Binding: headroom.BindingPIDMax, UsedPercent: 92.4}
	for _, tt := range []struct {
		predicting bool
		wantPred   bool
	}{{true, true}, {false, false}} {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(NewCollector(view{agent.View{
			Condition: verdict.Condition{Type: verdict.ConditionType, Status: true, Reason: verdict.ReasonPredicted},
			Node:      n, HasNode: true, Prediction: 90 * time.Second, Predicting: tt.predicting,
			Matches: map[agent.MatchKey]uint64{{Signature: "GoThreadCreateFailed", Family: "go", Trust: "attributed"}: 3},
			Events:  map[verdict.EventReason]verdict.Tally{verdict.EventProcessCreationFailed: {Announced: 2, Aggregated: 40, Summaries: 1}},
		}}))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += "," + l.GetName() + "=" + l.GetValue()
				}
				switch {
				case m.GetGauge() != nil:
					got[key] = m.GetGauge().GetValue()
				case m.GetCounter() != nil:
					got[key] = m.GetCounter().GetValue()
				}
			}
		}
		want := map[string]float64{
			"pidpressure_condition_true":                                                          1,
			"pidpressure_condition_reason,reason=PIDExhaustionPredicted":                          1,
			"pidpressure_node_headroom_tasks,limit=kernel.pid_max":                                2468,
			"pidpressure_node_headroom_tasks,limit=kernel.threads-max":                            70000,
			"pidpressure_node_binding_limit,limit=kernel.pid_max":                                 1,
			"pidpressure_node_used_ratio":                                                         0.924,
			"pidpressure_matches_total,family=go,signature=GoThreadCreateFailed,trust=attributed": 3,
			"pidpressure_events_total,outcome=aggregated,reason=ProcessCreationFailed":            40,
			"pidpressure_events_total,outcome=summary,reason=ProcessCreationFailed":               1,
			"pidpressure_events_total,outcome=announced,reason=UnitTasksMaxReached":               0,
			"pidpressure_prediction_trusted":                                                      map[bool]float64{true: 1, false: 0}[tt.predicting],
		}
		for k, w := range want {
			if g, ok := got[k]; !ok || g != w {
				t.Errorf("predicting=%v: %s = %v (present %v), want %v", tt.predicting, k, g, ok, w)
			}
		}
		if _, ok := got["pidpressure_predicted_exhaustion_seconds"]; ok != tt.wantPred {
			t.Errorf("predicting=%v: predicted_exhaustion_seconds present = %v", tt.predicting, ok)
		}
	}
}
