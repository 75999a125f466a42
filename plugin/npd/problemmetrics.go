package npd

import (
	"k8s.io/klog/v2"
	"k8s.io/node-problem-detector/pkg/problemmetrics"

	"github.com/pidpressure/pidpressure/internal/verdict"
)

// NPD's own problem metrics (problem_gauge, problem_counter), which its
// Prometheus exporter serves: the gauge follows the condition, the counter
// counts announced Events by reason (an aggregated Event counts once, its
// message carries how many failures it stands for).

// initMetrics makes every event reason visible at zero from the start, so
// a dashboard can tell "never happened" from "not reporting". The gauge is
// set by the first condition, which the detector reports at once.
func initMetrics() {
	for _, r := range verdict.EventReasons() {
		logErr(problemmetrics.GlobalProblemMetricsManager.IncrementProblemCounter(string(r), 0))
	}
}

func recordCondition(c verdict.Condition) {
	logErr(problemmetrics.GlobalProblemMetricsManager.SetProblemGauge(c.Type, string(c.Reason), c.Status))
}

func recordEvent(e verdict.Event) {
	logErr(problemmetrics.GlobalProblemMetricsManager.IncrementProblemCounter(string(e.Reason), 1))
}

func logErr(err error) {
	if err != nil {
		klog.Errorf("pid-pressure-monitor: problem metrics: %v", err)
	}
}
