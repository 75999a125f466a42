package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

// hasCheck reports whether the diagnosis's audit has the check.
func hasCheck(d headroom.Diagnosis, check string) bool {
	for _, f := range d.Audit {
		if f.Check == check {
			return true
		}
	}
	return false
}

// scenarioTasksMax: containerd.service at a TasksMax just above its
// tasks. A new pod's container cannot start (containerd cannot fork its
// shim or create a thread); UnitTasksMaxReached names containerd.service,
// and the condition turns True PIDExhausted. Then TasksMax goes back to
// infinity, the pod goes and the condition clears.
func scenarioTasksMax(t *testing.T, n *realNode) {
	ctx := context.Background()
	out := n.exec(t, time.Minute, `read -r cur </sys/fs/cgroup/system.slice/containerd.service/pids.current
systemctl set-property --runtime containerd.service TasksMax=$((cur + 1))
echo "tasks=$cur max=$(cat /sys/fs/cgroup/system.slice/containerd.service/pids.max)"`)
	t.Logf("containerd.service: %s", strings.TrimSpace(out))
	defer func() {
		n.exec(t, time.Minute, `systemctl set-property --runtime containerd.service TasksMax=infinity; systemctl is-active containerd.service || systemctl restart containerd.service; true`)
		deletePods(t, "blocked")
		if c, err := cluster.WaitCondition(ctx, vmNode, 4*time.Minute, corev1.ConditionFalse); err != nil {
			t.Errorf("the condition did not clear once TasksMax was raised: %v", err)
		} else {
			t.Logf("cleared: %s %s", c.Reason, c.Message)
		}
		// The kubelet relays containerd's failures (gRPC errors): they are
		// containerd.service's, not the kubelet's.
		evs, err := cluster.Events(ctx, vmNode)
		if err != nil {
			t.Error(err)
		}
		for _, e := range evs {
			if e.Source.Component == agentComponent && strings.HasPrefix(e.Message, "kubelet (pid") {
				t.Errorf("an Event blames the kubelet for what it relays: %s %q", e.Reason, e.Message)
			}
			if e.Source.Component == agentComponent && strings.Contains(e.Message, "(reported by kubelet") {
				t.Logf("Event %s: %s", e.Reason, e.Message)
			}
		}
	}()
	if _, err := cluster.Client.CoreV1().Pods("default").Create(ctx, workloadPod("blocked", "sleep"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "UnitTasksMaxReached naming containerd.service", func() (bool, string) {
		for _, e := range nodeEvents(t, "UnitTasksMaxReached") {
			if strings.HasPrefix(e.Message, "containerd.service ") {
				t.Logf("Event %s: %s", e.Reason, e.Message)
				return true, ""
			}
		}
		return false, "none yet"
	})
	eventually(t, time.Minute, "True PIDExhausted", func() (bool, string) {
		c, _, err := cluster.Condition(ctx, vmNode)
		if err == nil && c.Status == corev1.ConditionTrue && c.Reason == "PIDExhausted" && strings.Contains(c.Message, "containerd.service") {
			t.Logf("condition: %s %s: %s", c.Status, c.Reason, c.Message)
			return true, ""
		}
		return false, fmt.Sprintf("%s %s %q %v", c.Status, c.Reason, c.Message, err)
	})
	t.Logf("the kubelet's and containerd's failures (cut):\n%s", n.exec(t, time.Minute, `journalctl --no-pager -o short-precise -u kubelet.service -u containerd.service | grep -i 'temporarily unavailable' | tail -n 6 | cut -c1-400`))
	d := n.capture(t, "cgroupv2-node-vm-unit-at-tasksmax", "containerd.service is at a TasksMax of its tasks + 1 (systemctl set-property --runtime); pod default/blocked cannot start: the network plugin containerd runs for its sandbox cannot create a thread. The kernel counts the unit's refusals in its pids.events.local.")
	var unit *headroom.Cgroup
	for i, c := range d.Cgroups {
		if c.Kind == headroom.KindUnit && c.Unit == "containerd.service" {
			unit = &d.Cgroups[i]
		}
	}
	if unit == nil || unit.Max.Unlimited || unit.Refused == 0 || !hasCheck(d, "UnitTasksMaxFinite") {
		t.Errorf("the captured containerd.service: %+v; audit %+v", unit, d.Audit)
	}
	if p, err := cluster.Client.CoreV1().Pods("default").Get(ctx, "blocked", metav1.GetOptions{}); err == nil && p.Status.Phase == corev1.PodRunning {
		t.Errorf("the pod started although containerd.service was at its TasksMax")
	}
}

// clockOffset is the guest's clock minus this machine's, and the bound of
// its error (half the best round trip of three).
func (n *realNode) clockOffset(t *testing.T) (offset, bound time.Duration) {
	t.Helper()
	bound = time.Hour
	for range 3 {
		t0 := time.Now()
		out := n.exec(t, time.Minute, "date +%s.%N")
		t1 := time.Now()
		f, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil {
			t.Fatalf("the guest's clock: %q: %v", out, err)
		}
		guest := time.Unix(0, int64(f*1e9))
		if half := t1.Sub(t0) / 2; half < bound {
			offset, bound = guest.Sub(t0.Add(half)), half
		}
	}
	return offset, bound
}

// scenarioZombies: zombies as real incidents make them. A pod whose exec
// probe leaves orphans behind, which its container's init never reaps: the
// agent's census, taken while it runs (every minute), names the parent and
// its pod in ZombieProcessesAccumulating. Three pods whose programs never
// reap their children make the node's tasks grow toward a kernel.pid_max
// lowered to leave 2,500 PIDs: PIDExhaustionPredicted follows. pid_max is
// restored and the condition clears once they go.
func scenarioZombies(t *testing.T, n *realNode) {
	ctx := context.Background()
	out := n.exec(t, time.Minute, `old=$(cat /proc/sys/kernel/pid_max)
new=$(`+pidMaxLeaving(2500)+`)
echo "$new" >/proc/sys/kernel/pid_max
echo "$old" >/mnt/host/old_pid_max
echo "pid_max=$(cat /proc/sys/kernel/pid_max) old_pid_max=$old"`)
	t.Logf("zombies: %s", strings.TrimSpace(out))
	names := []string{"zombies", "unreaped-a", "unreaped-b", "unreaped-c"}
	defer func() {
		deletePods(t, names...)
		n.exec(t, time.Minute, `cat /mnt/host/old_pid_max >/proc/sys/kernel/pid_max`)
		if c, err := cluster.WaitCondition(ctx, vmNode, 4*time.Minute, corev1.ConditionFalse); err != nil {
			t.Errorf("the condition did not clear once the zombies were gone: %v", err)
		} else {
			t.Logf("cleared: %s %s", c.Reason, c.Message)
		}
	}()
	p := workloadPod("zombies", "sleep")
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/workload", "probe", "10"}}},
		PeriodSeconds: 1, TimeoutSeconds: 10,
	}
	runPods(t, p, workloadPod("unreaped-a", "zombies", "3"), workloadPod("unreaped-b", "zombies", "3"), workloadPod("unreaped-c", "zombies", "3"))
	predicted := false
	eventually(t, 4*time.Minute, "ZombieProcessesAccumulating naming the pod", func() (bool, string) {
		if c, _, err := cluster.Condition(ctx, vmNode); err == nil && c.Reason == "PIDExhaustionPredicted" && !predicted {
			predicted = true
			t.Logf("condition: %s %s: %s", c.Status, c.Reason, c.Message)
		}
		for _, e := range nodeEvents(t, "ZombieProcessesAccumulating") {
			if strings.Contains(e.Message, "pod default/zombies") {
				t.Logf("Event %s: %s", e.Reason, e.Message)
				if !strings.HasPrefix(e.Message, "workload (pid ") {
					t.Errorf("the Event does not name the parent: %s", e.Message)
				}
				return true, ""
			}
		}
		out, _, _ := n.run(time.Minute, `ps -eo stat,ppid,comm | awk '$1 ~ /^Z/ {z[$2]++} END {for (p in z) print p, z[p]}'`)
		return false, "zombies by parent: " + strings.TrimSpace(out)
	})
	d := n.capture(t, "cgroupv2-node-vm-zombies", "Pod default/zombies runs the workload as its container's init, which never reaps; its exec readiness probe leaves ten orphans a second, which become that init's zombies. Pods default/unreaped-a, -b and -c fork three children a second that exit and are never reaped. kernel.pid_max is lowered to leave 2,500 PIDs.")
	parent := false
	for _, z := range d.Scan.ZombieParents {
		if z.Comm == "workload" && z.Pod != nil && z.Pod.String() == "default/zombies" && z.Zombies > 0 {
			parent = true
		}
	}
	if !parent {
		t.Errorf("the captured tree has no zombie parent in pod default/zombies: %+v", d.Scan.ZombieParents)
	}
	// The growth (about 10 tasks a second) lasts until the pods' limits,
	// about 100 s: the trend, fitted over a minute, predicts the limit.
	var pred corev1.NodeCondition
	if !predicted {
		eventually(t, 2*time.Minute, "PIDExhaustionPredicted", func() (bool, string) {
			c, _, err := cluster.Condition(ctx, vmNode)
			pred = c
			return err == nil && c.Status == corev1.ConditionTrue && c.Reason == "PIDExhaustionPredicted", fmt.Sprintf("%s %s %q %v", c.Status, c.Reason, c.Message, err)
		})
		t.Logf("condition: %s %s: %s", pred.Status, pred.Reason, pred.Message)
	}
}
