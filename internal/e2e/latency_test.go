package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// BenchmarkFailureToCondition measures, through the real apiserver, the
// time from the first failed fork (journald's receive time of the first
// "fork: retry" line) to PIDPressureRisk=True being visible on the Node, in
// the incident scenario: a PID namespace with pid_max 500 exhausted by bash
// fork loops, the agent running in it as it would with hostPID.
//
//   - in-process: this agent, with the embedded default config (2 s
//     samples);
//   - exec-plugin: NPD's custom plugin monitor (the same NPD v1.36.0 code)
//     running `pidpressure check` at its default 30 s interval, from
//     config/pid-pressure-plugin.json;
//   - *-burst: the load stops after 5 s (a storm that passes), where the
//     plain variants keep the namespace exhausted;
//   - *-full-cgroup: the same, with the agent's own pids cgroup full
//     (pids.max set to its pids.current before the failure).
//
// Each iteration starts a new agent for a new Node and waits a random part
// of the agent's period (2 s or 30 s) before the load, so that the failure
// falls anywhere in it. Runs the condition never showed within 75 s count
// as "never" and are left out of the quantiles. Run it with
// make bench-e2e (docs/benchmarks.md).
func BenchmarkFailureToCondition(b *testing.B) {
	journald.Ensure(b)
	for _, v := range []struct {
		name       string
		exec       bool
		fullCgroup bool
		burst      time.Duration // the load stops after this; 0: it lasts
	}{
		{"in-process", false, false, 0},
		{"exec-plugin", true, false, 0},
		{"in-process-burst", false, false, 5 * time.Second},
		{"exec-plugin-burst", true, false, 5 * time.Second},
		{"in-process-full-cgroup", false, true, 0},
		{"exec-plugin-full-cgroup", true, true, 0},
	} {
		b.Run(v.name, func(b *testing.B) {
			var seen []time.Duration
			never := 0
			for i := 0; b.Loop(); i++ {
				d, ok := latencyOnce(b, fmt.Sprintf("bench-%s-%d-%d", v.name, os.Getpid(), i), v.exec, v.fullCgroup, v.burst)
				if ok {
					seen = append(seen, d)
				} else {
					never++
				}
			}
			b.ReportMetric(float64(never), "never")
			b.ReportMetric(float64(len(seen)), "seen")
			if len(seen) > 0 {
				slices.Sort(seen)
				b.ReportMetric(quantile(seen, 0.5).Seconds(), "p50-s")
				b.ReportMetric(quantile(seen, 0.95).Seconds(), "p95-s")
				b.ReportMetric(seen[len(seen)-1].Seconds(), "max-s")
			}
			b.Logf("%s: %d runs, condition seen in %d: %v", v.name, len(seen)+never, len(seen), seen)
		})
	}
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func latencyOnce(b *testing.B, node string, execBased, fullCgroup bool, burst time.Duration) (time.Duration, bool) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	spec := testenv.AgentSpec{NPD: npdBin, Node: node, Kubeconfig: cluster.Admin, APIServer: cluster.URL(), Dir: dir, PIDMax: 500,
		Monitor: &testenv.Monitor{SampleInterval: "2s", FailureWindow: "2m", QuietPeriod: "5m", EventInterval: "5m"}}
	period := 2 * time.Second
	if execBased {
		spec.CustomPlugin = pluginConfig(b, dir)
		spec.Args = []string{"--v=3"} // NPD logs each plugin run and its result
		period = 30 * time.Second
	}
	var cg string
	if fullCgroup {
		cg = filepath.Join(testenv.PidsRoot, "pidpressure-bench-"+strconv.Itoa(os.Getpid()))
		remove, err := testenv.MakeCgroup(cg)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = remove() }()
		spec.Cgroup = cg
	}
	if err := cluster.RegisterNode(ctx, node); err != nil {
		b.Fatal(err)
	}
	a, err := testenv.StartAgent(spec)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = a.Stop() }()
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.WaitHealthy(hctx); err != nil {
		b.Fatal(err)
	}
	if _, err := cluster.WaitCondition(ctx, node, 40*time.Second, corev1.ConditionFalse); err != nil {
		b.Fatalf("%s: no initial condition; agent log:\n%s", node, a.Tail())
	}
	if fullCgroup {
		cur, err := os.ReadFile(filepath.Join(cg, "pids.current"))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cg, "pids.max"), bytes.TrimSpace(cur), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(time.Duration(rand.Int64N(int64(period)))) //nolint:gosec // a phase, not a secret
	tag := "pp" + node
	load, err := testenv.IncidentLoad(a.Init, tag, "")
	if err != nil {
		b.Fatal(err)
	}
	defer load.Stop()
	if burst > 0 {
		time.AfterFunc(burst, load.Stop)
	}
	_, err = cluster.WaitCondition(ctx, node, 75*time.Second, corev1.ConditionTrue)
	seen := err == nil
	at := time.Now()
	load.Stop()
	if !seen {
		cond, _, _ := cluster.Condition(ctx, node)
		log, _ := os.ReadFile(a.Log)
		if dir := os.Getenv("E2E_LOG_DIR"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, node+".log"), log, 0o644)
		}
		b.Logf("%s: not True within 75 s; the condition is %s %s: %s; the agent's log has %d lines saying EAGAIN, last plugin line: %s", node, cond.Status, cond.Reason, cond.Message,
			strings.Count(string(log), "resource temporarily unavailable"), lastLine(string(log), "plugin"))
		return 0, false
	}
	first, err := firstFailure(tag)
	if err != nil {
		b.Fatal(err)
	}
	return at.Sub(first), true
}

// firstFailure is when journald received the first "fork: retry" line
// logged under tag.
func firstFailure(tag string) (time.Time, error) {
	out, err := exec.Command("journalctl", "-t", tag, "-o", "json", "--no-pager", "--output-fields=MESSAGE,__REALTIME_TIMESTAMP").Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("journalctl -t %s: %w", tag, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		var e struct {
			Message string `json:"MESSAGE"`
			At      string `json:"__REALTIME_TIMESTAMP"`
		}
		if json.Unmarshal([]byte(l), &e) != nil || !strings.Contains(e.Message, "fork") {
			continue
		}
		us, err := strconv.ParseInt(e.At, 10, 64)
		if err != nil {
			return time.Time{}, err
		}
		return time.UnixMicro(us), nil
	}
	return time.Time{}, fmt.Errorf("no failed fork logged under %s", tag)
}

// pluginConfig writes config/pid-pressure-plugin.json with the built
// pidpressure and a state directory under dir.
func pluginConfig(b testing.TB, dir string) string {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "config", "pid-pressure-plugin.json"))
	if err != nil {
		b.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(raw, &conf); err != nil {
		b.Fatal(err)
	}
	rule := conf["rules"].([]any)[0].(map[string]any)
	rule["path"] = cliBin
	rule["args"] = []string{"check", "--state-dir", filepath.Join(dir, "check"), "--window", "3s"}
	out, _ := json.Marshal(conf)
	p := filepath.Join(dir, "plugin.json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// lastLine is the last line of log containing s.
func lastLine(log, s string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return "(none)"
}
