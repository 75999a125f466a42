package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// TestNodeScenarios runs the agent on this machine (its own PID namespace,
// pid_max far away) and, one after the other: a non-root user forges a
// kubelet line (no condition change); a pod-like cgroup at its own pids.max
// refuses real forks (a PodPIDsLimitReached Event, the condition stays
// False); a real Go program fails at the pids.max of a cgroup standing in
// for system.slice/kubelet.service, logged through journald, which
// attributes it to kubelet.service by its cgroup2 path (the condition turns
// True and the Event names the unit).
//
// The cgroups are real (cgroup v1 pids controller); their names stand in
// for a kubelet's and a systemd unit's because this machine has neither.
func TestNodeScenarios(t *testing.T) {
	journald.Ensure(t)
	if _, err := os.Stat(filepath.Join(testenv.PidsRoot, "kubepods")); err == nil {
		t.Skip("this machine already has a kubepods cgroup")
	}
	uid := fmt.Sprintf("6b1d2c3e-4f50-4a61-8b72-%012d", os.Getpid())
	podDir := filepath.Join(testenv.PidsRoot, "kubepods", "pod"+uid)
	unitPids := filepath.Join(testenv.PidsRoot, "system.slice", "kubelet.service")
	unitUnified := filepath.Join(testenv.UnifiedRoot, "system.slice", "kubelet.service")
	// The cgroups exist before the agent starts, so that its discovery
	// finds them.
	for _, d := range []string{podDir, unitPids, unitUnified} {
		makeCgroup(t, d)
	}
	mustWrite(t, filepath.Join(podDir, "pids.max"), "1")
	mustWrite(t, filepath.Join(unitPids, "pids.max"), "12")

	node := "scenario-node"
	cl := watchCondition(t, node)
	a := startAgent(t, node, testenv.AgentSpec{Monitor: &testenv.Monitor{PidsEvents: true}})
	cl.waitFor(t, 30*time.Second, "initial False condition", isFalse)
	noTrue := func(what string) {
		t.Helper()
		for _, r := range cl.snapshot() {
			if r.status != corev1.ConditionFalse {
				t.Fatalf("%s changed the condition: %s", what, cl)
			}
		}
	}

	t.Run("forged line", func(t *testing.T) {
		if err := testenv.Forge(context.Background(), "kubelet", "runtime: failed to create new OS thread (have 15 already; errno=11)"); err != nil {
			t.Fatal(err)
		}
		// Matched, and attributed by journald's own fields to the sender
		// (logger, UID 65534), not to the identifier it claimed.
		waitMetric(t, a, 10*time.Second, "pidpressure_matches_total", `family="go"`, 1)
		time.Sleep(3 * time.Second) // samples and a heartbeat later
		noTrue("a forged line")
		evs, err := cluster.Events(context.Background(), node)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Reason == "ThreadCreationFailed" && strings.HasPrefix(e.Message, "kubelet") {
				t.Errorf("an Event believed the forged identifier: %s", e.Message)
			}
		}
	})

	t.Run("pod at its own limit", func(t *testing.T) {
		refused, err := testenv.RefuseForks(context.Background(), podDir, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if refused != 1000 {
			t.Fatalf("perl saw %d of 1000 forks refused in a cgroup at pids.max", refused)
		}
		e := waitEvents(t, node, 20*time.Second, "PodPIDsLimitReached", reasonIs("PodPIDsLimitReached"))
		if !strings.Contains(e.Message, uid) {
			t.Errorf("PodPIDsLimitReached does not name the pod: %s", e.Message)
		}
		time.Sleep(3 * time.Second)
		noTrue("a pod at its own pids.max")
	})

	t.Run("kubelet.service at its TasksMax", func(t *testing.T) {
		out, err := testenv.RunInUnit(context.Background(), unitUnified, unitPids, "kubelet", goThreads)
		if err == nil {
			t.Fatalf("the Go program did not fail in a cgroup with pids.max 12: %s", out)
		}
		r := cl.waitFor(t, 20*time.Second, "PIDExhausted", func(r record) bool {
			return r.status == corev1.ConditionTrue && r.reason == "PIDExhausted"
		})
		if !strings.Contains(r.msg, "kubelet.service") {
			t.Errorf("the condition does not name kubelet.service: %s", r.msg)
		}
		e := waitEvents(t, node, 20*time.Second, "UnitTasksMaxReached", reasonIs("UnitTasksMaxReached"))
		if !strings.HasPrefix(e.Message, "kubelet.service ") || !strings.Contains(e.Message, "TasksMax") {
			t.Errorf("UnitTasksMaxReached does not name the unit: %s", e.Message)
		}
		evs, err := cluster.Events(context.Background(), node)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Reason == "ThreadCreationFailed" && strings.Contains(e.Message, "kubelet.service)") && strings.Contains(e.Message, "no limit at its maximum") {
				t.Errorf("the Go program's failure in kubelet.service was not attributed to its TasksMax: %s", e.Message)
			}
		}
		describe, err := cluster.Kubectl(context.Background(), cluster.Admin, "describe", "node", node)
		if err != nil {
			t.Fatal(err)
		}
		saveDescribe(t, "kubelet-unit", node, describe)
		for _, want := range []string{"PIDExhausted", "UnitTasksMaxReached", "PodPIDsLimitReached"} {
			if !strings.Contains(describe, want) {
				t.Errorf("kubectl describe node lacks %q", want)
			}
		}
	})
}

// TestAPIServerOutage stops kube-apiserver for 30 s while the PID namespace
// the agent watches is exhausted: the agent keeps running, and when the
// apiserver is back the condition and the Events arrive.
func TestAPIServerOutage(t *testing.T) {
	journald.Ensure(t)
	node := "outage-node"
	cl := watchCondition(t, node)
	a := startAgent(t, node, testenv.AgentSpec{PIDMax: 500, Monitor: &testenv.Monitor{QuietPeriod: "2m"}})
	cl.waitFor(t, 30*time.Second, "initial False condition", isFalse)

	if err := cluster.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = cluster.StartAPIServer()
		}
	})
	load, err := testenv.IncidentLoad(a.Init, "ppoutage", "")
	if err != nil {
		t.Fatal(err)
	}
	waitMetric(t, a, 20*time.Second, "pidpressure_condition_true", "pidpressure_condition_true ", 1)
	load.Stop()
	time.Sleep(30*time.Second - time.Since(down))
	if !a.Alive() {
		t.Fatalf("the agent died while the apiserver was away: %s", a.Tail())
	}
	if err := cluster.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	up := time.Now()
	cl.waitFor(t, 60*time.Second, "PIDExhausted after the outage", func(r record) bool {
		return r.status == corev1.ConditionTrue && r.reason == "PIDExhausted"
	})
	t.Logf("condition visible %.1f s after the apiserver came back", time.Since(up).Seconds())
	waitEvents(t, node, 90*time.Second, "ProcessCreationFailed", reasonIs("ProcessCreationFailed"))
	t.Logf("Events visible %.1f s after the apiserver came back", time.Since(up).Seconds())
	if !a.Alive() {
		t.Errorf("the agent exited: %s", a.Tail())
	}
}

// makeCgroup creates the cgroup dir (and missing parents) and removes
// them, with whatever is left in them, when the test ends.
func makeCgroup(t *testing.T, dir string) {
	t.Helper()
	remove, err := testenv.MakeCgroup(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := remove(); err != nil {
			t.Error(err)
		}
	})
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitMetric waits until a series of the agent's metrics whose labels
// contain labels reaches at least min.
func waitMetric(t *testing.T, a *testenv.Agent, timeout time.Duration, name, labels string, minimum float64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if v, _ := metric(a, name, labels); v >= minimum {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, series := metric(a, name, "")
	t.Fatalf("%s{%s} did not reach %v within %s; the series: %s", name, labels, minimum, timeout, series)
}

// metric returns the value of the first series of name whose labels
// contain labels; with labels "" it lists every series of name instead.
func metric(a *testenv.Agent, name, labels string) (float64, string) {
	all := labels == ""
	r, err := http.Get("http://" + a.Metrics + "/metrics") //nolint:noctx // local
	if err != nil {
		return -1, ""
	}
	defer func() { _ = r.Body.Close() }()
	sc := bufio.NewScanner(r.Body)
	var seen []string
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+" ") && !strings.HasPrefix(l, name+"{") || !strings.Contains(l, labels) {
			continue
		}
		seen = append(seen, l)
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && !all {
			return v, l
		}
	}
	return -1, strings.Join(seen, "; ")
}
