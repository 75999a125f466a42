package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// agentComponent is the source of the agent's Events.
const agentComponent = "pid-pressure-monitor"

// scenarioRestart: the agent's pod is deleted. What happens while no agent
// runs is reported by the next one, from each source's saved position, and
// nothing the last one reported is reported or counted again:
//   - pids.events: a pod at its limit, counted by the old agent, refuses
//     more forks in the gap; the new agent counts exactly those;
//   - kernel records: the kernel logs the gap's new refusal (a unit at
//     TasksMax=1); the new agent matches exactly the kernel lines logged
//     since the old one stopped, none of the earlier scenarios'. deploy/base
//     reads them from the journal (kmsg is off where journald runs); the
//     kmsg source's own resume is tested on this machine's /dev/kmsg
//     (internal/kmsg's TestResumeLosesAndRepeatsNothing);
//   - journal: that unit's bash says "fork: retry"; the new agent reports
//     it, and no Event reported before is counted up.
func scenarioRestart(t *testing.T, n *realNode) {
	ctx := context.Background()
	dir := filepath.Join(n.share, "scenario")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	trigger := func(word string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "gap"), []byte(word+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	trigger("wait")
	runPods(t, threadsPod("gap", "gap"))
	defer func() {
		trigger("stop")
		deletePods(t, "gap")
	}()

	// Before: the pod at its limit, reported and counted by the old agent;
	// then it holds its threads and tries no more.
	trigger("go")
	eventually(t, 2*time.Minute, "PodPIDsLimitReached naming default/gap", func() (bool, string) {
		for _, e := range nodeEvents(t, "PodPIDsLimitReached") {
			if strings.Contains(e.Message, "default/gap") {
				return true, ""
			}
		}
		return false, "none yet"
	})
	trigger("hold")
	var cgroup string
	var held uint64
	eventually(t, time.Minute, "the old agent counted every refusal of default/gap", func() (bool, string) {
		body := n.agentMetrics(t)
		if cgroup == "" {
			cgroup = metricLabel(body, "pidpressure_cgroup_pids_max_events_total", "cgroup", `kind="pod"`, `pod="gap"`)
			if cgroup == "" {
				return false, "no pidpressure_cgroup_pids_max_events_total for the pod default/gap"
			}
		}
		held = n.refusals(t, cgroup)
		seen := metricSum(body, "pidpressure_rejected_forks_total", `cgroup="`+cgroup+`"`)
		return held > 0 && seen == float64(held), fmt.Sprintf("the node's pids.events.local of %s: max %d; the agent counted %v", cgroup, held, seen)
	})
	t.Logf("before the restart: %s refused %d forks, all counted", cgroup, held)

	old := agentPod(t, n)
	before := map[string]int32{}
	evs, err := cluster.Events(ctx, vmNode)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Source.Component == agentComponent {
			before[e.Name] = e.Count
		}
	}
	if err := cluster.Client.CoreV1().Pods("pidpressure").Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Once the old agent has exited and before the next one runs: the pod
	// refuses more forks, then holds; a unit that cannot fork (TasksMax=1)
	// runs bash, which says so in the journal, and the kernel logs the
	// unit's first refusal.
	out := n.exec(t, 3*time.Minute, `nap() { read -r -t "$1" <>/run/nap.fifo; true; }
refusals() { awk '$1 == "max" { print $2 }' /sys/fs/cgroup`+cgroup+`/pids.events.local; }
for _ in $(seq 1 600); do pgrep -f '^/node-problem-detector' >/dev/null || break; nap 0.2; done
pgrep -f '^/node-problem-detector' && { echo "the old agent still runs"; exit 1; }
echo "gone=$(date +%s)"
echo go >/mnt/host/scenario/gap
for _ in $(seq 1 100); do [ "$(refusals)" -ge `+strconv.FormatUint(held+2, 10)+` ] && break; nap 0.1; done
echo hold >/mnt/host/scenario/gap
echo "refusals=$(refusals)"
systemd-run --quiet --unit=restart-probe.service -p TasksMax=1 bash -c '/bin/true; exit 0'
echo "probe started $(date +%s.%N); agent running: $(pgrep -f '^/node-problem-detector' || echo none)"`)
	t.Logf("while no agent ran:\n%s", strings.TrimSpace(out))
	if !strings.Contains(out, "agent running: none") {
		t.Fatalf("the next agent was already running when the failures happened: %s", out)
	}
	gone := regexp.MustCompile(`gone=(\d+)`).FindStringSubmatch(out)
	if gone == nil {
		t.Fatalf("the node did not say when the old agent stopped: %s", out)
	}
	next := agentPod(t, n)
	if next.Name == old.Name {
		t.Fatalf("the agent's pod was not replaced")
	}

	// journal: the probe's failure, reported by the next agent.
	eventually(t, 2*time.Minute, "the failure while no agent ran, reported by the next", func() (bool, string) {
		evs, err := cluster.Events(ctx, vmNode)
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs {
			if strings.Contains(e.Message, "restart-probe.service") {
				t.Logf("Event %s: %s", e.Reason, e.Message)
				// Read after the fact, the failure is not judged by the
				// limits of now (the unit and its TasksMax are gone).
				if strings.Contains(e.Message, "not explained by a PID limit") {
					t.Errorf("a failure read after the fact is judged by the limits of now: %s", e.Message)
				}
				return true, ""
			}
		}
		return false, "no Event names restart-probe.service"
	})
	// pids.events: the gap's refusals, counted once. The kernel's lines
	// since the old agent stopped, each matched once.
	kernelLines := n.exec(t, time.Minute, `journalctl -k -o cat --since=@`+gone[1]+` | grep -c 'fork rejected by pids controller' || true`)
	wantKernel, err := strconv.Atoi(strings.TrimSpace(kernelLines))
	if err != nil || wantKernel < 1 {
		t.Fatalf("the kernel logged no refusal while no agent ran: %q %v", kernelLines, err)
	}
	eventually(t, time.Minute, "the next agent counted the gap's refusals and kernel lines, once", func() (bool, string) {
		body := n.agentMetrics(t)
		now := n.refusals(t, cgroup)
		seen := metricSum(body, "pidpressure_rejected_forks_total", `cgroup="`+cgroup+`"`)
		kernel := metricSum(body, "pidpressure_matches_total", `signature="PidsControllerForkRejected"`)
		ok := now > held && seen == float64(now-held) && kernel == float64(wantKernel)
		return ok, fmt.Sprintf("%s refused %d before, %d now; the next agent counted %v (want %d); kernel lines matched %v (want %d)",
			cgroup, held, now, seen, now-held, kernel, wantKernel)
	})

	// What was reported before stays reported once: no Event counted up,
	// and no new one other than the gap's.
	evs, err = cluster.Events(ctx, vmNode)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Source.Component != agentComponent || strings.Contains(e.Message, "default/gap") {
			continue // the kubelet's own; the gap pod's new refusals
		}
		if strings.Contains(e.Message, " times since ") && e.Reason != "PIDLimitMisconfigured" {
			// The summary of what the old agent counted after announcing
			// it, written when the events interval ends (the new agent's
			// to write, from the snapshot), counts nothing twice. The
			// audit's standing findings have no summary: a restarted
			// agent's audit is not another occurrence.
			continue
		}
		c, seen := before[e.Name]
		switch {
		case !seen && !strings.Contains(e.Message, "restart-probe.service") && !strings.Contains(e.Message, "before it was read"):
			t.Errorf("after the restart, a new Event not about the gap: %s %q", e.Reason, e.Message)
		case seen && e.Count != c:
			t.Errorf("after the restart, Event %s %q counted %d → %d", e.Reason, e.Message, c, e.Count)
		}
	}
	if cs := next.Status.ContainerStatuses; len(cs) == 1 && cs[0].RestartCount != 0 {
		t.Errorf("the new agent's container restarted %d times", cs[0].RestartCount)
	}
}

// refusals is the node's own count of the forks cgroup refused at its
// pids.max (pids.events.local "max").
func (n *realNode) refusals(t *testing.T, cgroup string) uint64 {
	t.Helper()
	out := n.exec(t, time.Minute, `awk '$1 == "max" { print $2 }' /sys/fs/cgroup`+cgroup+`/pids.events.local`)
	v, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("pids.events.local of %s: %q: %v", cgroup, out, err)
	}
	return v
}

// metricSum sums the samples of the metric name in a Prometheus text body
// whose labels contain every one of labels (written as `key="value"`); 0
// when there are none.
func metricSum(body, name string, labels ...string) float64 {
	sum := 0.0
	for _, l := range metricLines(body, name, labels...) {
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// metricLabel is the value of label key on the first sample of name that
// carries labels, or "".
func metricLabel(body, name, key string, labels ...string) string {
	for _, l := range metricLines(body, name, labels...) {
		if m := regexp.MustCompile(`[{,]` + key + `="([^"]*)"`).FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	return ""
}

func metricLines(body, name string, labels ...string) []string {
	var out []string
next:
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		for _, want := range labels {
			if !strings.Contains(l, want) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}
