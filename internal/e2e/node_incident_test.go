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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// workloadPod is a pod of the workload image running args, on the node.
func workloadPod(name string, args ...string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:                      vmNode,
			TerminationGracePeriodSeconds: &grace,
			RestartPolicy:                 corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "workload", Image: workloadImage, ImagePullPolicy: corev1.PullNever, Args: args,
			}},
		},
	}
}

// usage is the node's usage as a message states it.
var usage = regexp.MustCompile(`node tasks \d+ of \d+ usable`)

// threadsPod is a workload pod that creates threads when the share's
// scenario/trigger file holds "go" (workload.c's threads mode).
func threadsPod(name, trigger string) *corev1.Pod {
	p := workloadPod(name, "threads", "/scenario/"+trigger)
	p.Spec.Volumes = []corev1.Volume{{Name: "scenario", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/mnt/host/scenario"}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scenario", MountPath: "/scenario"}}
	return p
}

// runPods creates the pods and waits until all run.
func runPods(t *testing.T, pods ...*corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	for _, p := range pods {
		if _, err := cluster.Client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 3*time.Minute, "the workload pods running", func() (bool, string) {
		for _, p := range pods {
			got, err := cluster.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil || got.Status.Phase != corev1.PodRunning {
				return false, fmt.Sprintf("%s: %v %v", p.Name, err, got.Status.Phase)
			}
		}
		return true, ""
	})
}

// deletePods deletes the pods and waits until they are gone.
func deletePods(t *testing.T, names ...string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range names {
		_ = cluster.Client.CoreV1().Pods("default").Delete(ctx, n, metav1.DeleteOptions{})
	}
	eventually(t, 3*time.Minute, "the workload pods gone", func() (bool, string) {
		for _, n := range names {
			if _, err := cluster.Client.CoreV1().Pods("default").Get(ctx, n, metav1.GetOptions{}); err == nil {
				return false, n + " still there"
			}
		}
		return true, ""
	})
}

// grepLines are the lines of text that start with one of the prefixes.
func grepLines(text string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// pidMaxLeaving is a shell command that prints the kernel.pid_max that
// leaves free PIDs unused: after a wrap the kernel hands out PIDs from 300
// up, so it is 300 plus the PIDs in use from 300 below it plus free.
func pidMaxLeaving(free int) string {
	f := strconv.Itoa(free)
	return `ls /proc/*/task | grep -xE '[0-9]+' | sort -n | awk 'BEGIN { free = 0; want = 300 } $1 >= 300 { while (want < $1 && free < ` + f +
		`) { want++; free++ } if (free >= ` + f + `) exit; if ($1 == want) want++ } END { while (free < ` + f + `) { want++; free++ } print want }'`
}

// nodeEvents are the Events about the node with reason.
func nodeEvents(t *testing.T, reason string) []corev1.Event {
	t.Helper()
	evs, err := cluster.Events(context.Background(), vmNode)
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range evs {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// agentMetrics is the agent's own /metrics, fetched inside the node from
// the pod's address (bash's /dev/tcp: the pod network is the node's own).
func (n *realNode) agentMetrics(t *testing.T) string {
	t.Helper()
	pod := agentPod(t, n)
	return n.exec(t, time.Minute, `exec 3<>/dev/tcp/`+pod.Status.PodIP+`/20258 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
}

// scenarioPodLimit: a pod that fork-bombs at its podPidsLimit yields
// PodPIDsLimitReached naming it as namespace/name, the node's condition
// stays False, no Event names a cgroup above the pod (the kernel counts a
// refusal in every ancestor's pids.events), and the metrics carry the
// pod's refusals with its namespace and name.
func scenarioPodLimit(t *testing.T, n *realNode) {
	runPods(t, workloadPod("forker", "fork"))
	defer deletePods(t, "forker")
	eventually(t, 2*time.Minute, "PodPIDsLimitReached naming default/forker", func() (bool, string) {
		evs := nodeEvents(t, "PodPIDsLimitReached")
		for _, e := range evs {
			if strings.Contains(e.Message, "default/forker") {
				t.Logf("Event %s: %s", e.Reason, e.Message)
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d PodPIDsLimitReached Events, none naming default/forker: %v", len(evs), evs)
	})
	var metric string
	eventually(t, time.Minute, "the pod's refusals in the metrics", func() (bool, string) {
		for _, l := range metricLines(n.agentMetrics(t), "pidpressure_cgroup_pids_max_events_total", `namespace="default"`, `pod="forker"`) {
			if !strings.HasSuffix(l, " 0") {
				metric = l
				return true, ""
			}
		}
		return false, "no pidpressure_cgroup_pids_max_events_total for default/forker above 0"
	})
	t.Logf("metric: %s", metric)
	evs, err := cluster.Events(context.Background(), vmNode)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if strings.Contains(e.Message, "kubepods.slice ") || strings.Contains(e.Message, "kubepods-besteffort.slice ") || strings.Contains(e.Message, "kubepods-burstable.slice ") {
			t.Errorf("an Event names a cgroup above the pod: %s %q", e.Reason, e.Message)
		}
	}
	if cond, ok, err := cluster.Condition(context.Background(), vmNode); err != nil || !ok || cond.Status != corev1.ConditionFalse {
		t.Errorf("a pod at its own limit turned the node's condition: %+v %v %v", cond, ok, err)
	}
	// The captured tree, read by the agent's reader: the pod at its limit
	// with its refusals, the slices above it with none of their own.
	d := n.capture(t, "cgroupv2-node-vm-pod-at-limit", "Pod default/forker forks until its pod's pids.max (300) refuses. The kernel counts each refusal in the pod's pids.events.local and, hierarchically, in pids.events of the pod and of every slice above it (kubepods.slice was read first, so its counter is lower).")
	var pod *headroom.Cgroup
	for i, c := range d.Cgroups {
		switch {
		case c.Kind == headroom.KindPod && c.Pod != nil && c.Pod.String() == "default/forker":
			pod = &d.Cgroups[i]
		case c.Kind == headroom.KindKubepods || c.Kind == headroom.KindQoS:
			if c.Refused != 0 {
				t.Errorf("%s counts %d refusals of its own; its limit refused none", c.Path, c.Refused)
			}
		}
	}
	if pod == nil || pod.Max != headroom.Finite(300) || pod.Refused == 0 {
		t.Errorf("the captured pod default/forker: %+v", pod)
	}
}

// captureEnv, when set to a directory, makes TestNode's scenarios write
// the node's captured trees there (make capture-hosts sets it to
// testdata/hosts).
const captureEnv = "PIDPRESSURE_CAPTURE_HOSTS"

// capture takes the node's trimmed /proc, /sys/fs/cgroup and /var
// (testdata/node/capture.sh) as the tree name, whose README says about,
// and reads it with the agent's own reader, as the unit tests read
// testdata/hosts; the scenario asserts on what the reader found.
func (n *realNode) capture(t *testing.T, name, about string) headroom.Diagnosis {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("testdata", "node", "capture.sh"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("capture %s: %s", name, strings.TrimSpace(n.exec(t, 5*time.Minute, "name="+shellQuote(name)+" about="+shellQuote(about)+"\n"+string(script))))
	dir := filepath.Join(n.share, "capture")
	d, err := headroom.Diagnose(hostfs.New(dir), headroom.DiagnoseOptions{})
	if err != nil {
		t.Fatalf("the agent's reader on the captured node: %v", err)
	}
	if dst := os.Getenv(captureEnv); dst != "" {
		dst = filepath.Join(dst, name)
		if err := os.RemoveAll(dst); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
			t.Fatalf("writing the capture to %s: %v", dst, err)
		}
		t.Logf("the capture is in %s", dst)
	}
	return d
}

// shellQuote quotes s for bash.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// incidentScript is the incident inside the node. It runs before the node
// is exhausted and forks nothing once it is:
//   - it lowers kernel.pid_max so that 400 PIDs are left free (after a wrap
//     the kernel hands out PIDs from 300 up, so the new pid_max is 300 plus
//     the PIDs in use above 300 below it plus 400: a little above the
//     running task count; the write is checked);
//   - it starts a shell unit that forks when told (its "fork: retry" goes
//     to the journal);
//   - it restarts the kubelet, as an upgrade or a crash does, and at once
//     tells the threads pods to go (the trigger in the share, which they
//     mount): the kubelet needs new threads while the node runs out, and
//     systemd keeps restarting it;
//   - it waits for the host's release, restores pid_max, starts the kubelet
//     again if systemd gave up on it, and prints what the node's own
//     programs said.
var incidentScript = `
set -u
nap() { read -r -t "$1" <>/run/nap.fifo; true; }
read -r _ _ _ rt _ </proc/loadavg
tasks=${rt#*/}
start=$(date +%s)
old=$(cat /proc/sys/kernel/pid_max)
systemd-run --quiet --unit=fork-retry.service bash -c 'while :; do read -r w </mnt/host/scenario/trigger; [ "$w" = go ] && /bin/true; [ "$w" = stop ] && exit 0; read -r -t 0.2 <>/run/nap.fifo; done'
new=$(` + pidMaxLeaving(400) + `)
echo "$new" >/proc/sys/kernel/pid_max
read -r got </proc/sys/kernel/pid_max
[ "$got" = "$new" ] || { echo "pid_max is $got, not $new: not exhausting"; exit 1; }
systemctl restart kubelet.service
echo go >/mnt/host/scenario/trigger
echo "tasks=$tasks pid_max=$new old_pid_max=$old" >/mnt/host/scenario/armed
for _ in $(seq 1 1500); do [ -e /mnt/host/scenario/release ] && break; nap 0.2; done
echo stop >/mnt/host/scenario/trigger
echo "$old" >/proc/sys/kernel/pid_max
systemctl reset-failed kubelet.service 2>/dev/null
systemctl start kubelet.service
echo "tasks=$tasks pid_max=$new old_pid_max=$old"
nap 2
echo "--- the node's journal"
journalctl --no-pager -o short-precise --since=@$start | grep -E 'fork: retry|failed to create new OS thread|newosproc|pthread_create|Resource temporarily unavailable|Failed to fork|Failed to spawn' | head -80
echo "--- the kubelet's own"
journalctl --no-pager -o short-precise --since=@$start -u kubelet.service | grep -E 'failed to create new OS thread|newosproc|Resource temporarily unavailable' | head -10
echo "--- the threads pods"
grep -h -m3 -E 'first_failure|pthread_create failed' /var/log/pods/default_threads-*/workload/0.log
`

// scenarioIncident: the reason this project exists, on the real node.
func scenarioIncident(t *testing.T, n *realNode) {
	ctx := context.Background()
	started := time.Now()
	dir := filepath.Join(n.share, "scenario")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "trigger"), []byte("wait\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runPods(t, threadsPod("threads-a", "trigger"), threadsPod("threads-b", "trigger"))
	offset, bound := n.clockOffset(t)
	released := false
	release := func() {
		if !released {
			released = true
			_ = os.WriteFile(filepath.Join(dir, "release"), nil, 0o644)
		}
	}
	type result struct {
		out string
		rc  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, rc, err := n.run(8*time.Minute, incidentScript)
		done <- result{out, rc, err}
	}()
	defer func() {
		release()
		r := <-done
		t.Logf("the node during the incident:\n%s", r.out)
		if r.err != nil || r.rc != 0 {
			t.Errorf("the incident script: %v, exit %d", r.err, r.rc)
		}
		deletePods(t, "threads-a", "threads-b")
	}()
	eventually(t, 3*time.Minute, "the node armed", func() (bool, string) {
		_, err := os.Stat(filepath.Join(dir, "armed"))
		return err == nil, fmt.Sprint(err)
	})
	armed, _ := os.ReadFile(filepath.Join(dir, "armed"))
	t.Logf("armed: %s", armed)
	pidMax := regexp.MustCompile(`pid_max=(\d+)`).FindStringSubmatch(string(armed))
	if pidMax == nil {
		t.Fatalf("the node did not say its pid_max: %q", armed)
	}
	cond, err := cluster.WaitCondition(ctx, vmNode, 3*time.Minute, corev1.ConditionTrue)
	if err != nil {
		t.Fatal(err)
	}
	// True with PIDHeadroomLow comes first (the tasks are above the new
	// pid_max's 85 %); PIDExhausted follows the first failure.
	// Polled every 100 ms: the time this machine first saw PIDExhausted.
	exhausted := false
	var seen time.Time
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && !exhausted; time.Sleep(100 * time.Millisecond) { // polling the apiserver
		if c, _, err := cluster.Condition(ctx, vmNode); err == nil {
			cond, exhausted, seen = c, c.Reason == "PIDExhausted", time.Now()
		}
	}
	if !exhausted {
		release()
		t.Fatalf("no PIDExhausted within 2 minutes: %s %s %q\n%s\n%s", cond.Status, cond.Reason, cond.Message, n.agentLog(), grepLines(n.agentMetrics(t), "pidpressure_matches_total", "pidpressure_source"))
	}
	describe, err := cluster.Kubectl(ctx, cluster.Admin, "describe", "node", vmNode)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl describe node %s during the incident:\n%s", vmNode, describe)
	for _, want := range []string{"kernel.pid_max", pidMax[1], "default/threads-"} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("the condition's message lacks %q: %s", want, cond.Message)
		}
	}
	// The usable PIDs count the tasks that kept PIDs above the lowered
	// pid_max: the usage is never above 100 % (it read 573 of 503 before).
	var tasks, usable int
	if _, err := fmt.Sscanf(usage.FindString(cond.Message), "node tasks %d of %d usable", &tasks, &usable); err != nil {
		t.Errorf("the condition's message gives no usage: %s", cond.Message)
	} else if tasks > usable {
		t.Errorf("more tasks than usable PIDs: %d of %d", tasks, usable)
	}
	// The incident goes on for 20 s more before the host releases it: the
	// node's own programs keep needing tasks (the kubelet, containerd,
	// systemd) and fail as they would.
	time.Sleep(20 * time.Second) // the incident's length, not a wait for anything
	release()
	r := <-done
	done <- r
	// The kubelet, restarted as the node ran out, cannot create its
	// threads: the Go runtime's own words, as in the incident; the agent
	// names it.
	if m := regexp.MustCompile(`(?m)^.* kubelet\[\d+\]: .*(failed to create new OS thread|newosproc).*$`).FindString(r.out); m != "" {
		t.Logf("the kubelet failed: %s", m)
		eventually(t, time.Minute, "an Event naming the kubelet's failure", func() (bool, string) {
			evs, err := cluster.Events(ctx, vmNode)
			if err != nil {
				return false, err.Error()
			}
			for _, e := range evs {
				if e.Source.Component == agentComponent && strings.Contains(e.Message, "kubelet.service") {
					t.Logf("Event %s: %s", e.Reason, e.Message)
					return true, ""
				}
			}
			return false, "no Event of the agent's names kubelet.service"
		})
	} else {
		t.Errorf("the kubelet never failed to create a thread:\n%s", r.out)
	}
	for _, who := range []string{"containerd", "systemd"} {
		if m := regexp.MustCompile(`(?m)^.* ` + who + `\[\d+\]: .*(failed to create new OS thread|newosproc|Resource temporarily unavailable|Failed to fork|Failed to spawn).*$`).FindString(r.out); m != "" {
			t.Logf("%s failed too: %s", who, m) // not every run: it depends on when each needs a new task
		}
	}
	first := regexp.MustCompile(`first_failure=(\d+\.\d+)`).FindAllStringSubmatch(r.out, -1)
	if len(first) == 0 {
		t.Errorf("no threads pod saw pthread_create fail:\n%s", r.out)
	} else {
		earliest := 0.0
		for _, m := range first {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil && (earliest == 0 || v < earliest) {
				earliest = v
			}
		}
		// The latency: from the first failure (the guest's clock, brought to
		// this machine's) to this machine seeing PIDExhausted on the Node.
		failed := time.Unix(0, int64(earliest*1e9)).Add(-offset)
		latency := seen.Sub(failed)
		t.Logf("latency, first pthread_create failure to PIDExhausted on the Node: %.2f s (clock offset %.3f s ± %.3f s, polled every 0.1 s)", latency.Seconds(), offset.Seconds(), bound.Seconds())
		if latency > 3*time.Second+bound {
			t.Errorf("PIDExhausted came %.2f s after the first failure; the bound is 3 s", latency.Seconds())
		}
	}
	if !strings.Contains(r.out, "fork: retry") {
		t.Errorf("the node's journal has no shell's fork: retry:\n%s", r.out)
	}

	// Afterwards: the pods go and the condition clears after its
	// hysteresis (30 s here).
	deletePods(t, "threads-a", "threads-b")
	if c, err := cluster.WaitCondition(ctx, vmNode, 4*time.Minute, corev1.ConditionFalse); err != nil {
		t.Errorf("the condition did not clear after the incident: %v", err)
	} else {
		t.Logf("cleared: %s %s", c.Reason, c.Message)
	}

	// What the incident cost the apiserver, as the DaemonSet's agent made
	// it (its service account's requests, from the audit log; the overlay
	// lifts the Event write budget, see agentOverlay).
	reqs := requests(t, "system:serviceaccount:pidpressure:pidpressure", started, time.Now())
	t.Logf("the real node's agent through the incident (%v): %v", time.Since(started).Round(time.Second), reqs)
}
