package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNode runs the agent on a real node: the node VM (Debian 13, kernel
// 6.12, systemd 257, cgroup v2) joined to the control plane on this
// machine with containerd 2.4.2 and the kubelet v1.37.2, the agent
// installed as a user installs it (kubectl apply --server-side -k
// deploy/base) and running as a pod of the real DaemonSet. One boot serves
// every scenario, in order.
func TestNode(t *testing.T) {
	n := bootNode(t)
	if !t.Run("Join", func(t *testing.T) { scenarioJoin(t, n) }) {
		return
	}
	t.Run("PodAtItsLimit", func(t *testing.T) { scenarioPodLimit(t, n) })
	t.Run("UnitAtItsTasksMax", func(t *testing.T) { scenarioTasksMax(t, n) })
	t.Run("Zombies", func(t *testing.T) { scenarioZombies(t, n) })
	t.Run("Restart", func(t *testing.T) { scenarioRestart(t, n) })
	t.Run("Incident", func(t *testing.T) { scenarioIncident(t, n) })
}

// scenarioJoin: the node is Ready with a Lease and the System Info of the
// real node; the DaemonSet's pod runs, and PIDPressureRisk False
// PIDHeadroomSufficient stands beside the kubelet's own conditions.
func scenarioJoin(t *testing.T, n *realNode) {
	ctx := context.Background()
	var lease *coordinationv1.Lease
	eventually(t, 90*time.Second, "the node's Lease", func() (bool, string) {
		var err error
		lease, err = cluster.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, vmNode, metav1.GetOptions{})
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == vmNode, fmt.Sprint(err)
	})
	nd, err := cluster.Client.CoreV1().Nodes().Get(ctx, vmNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := nd.Status.NodeInfo
	for what, ok := range map[string]bool{
		"kernel 6.12":       strings.HasPrefix(info.KernelVersion, "6.12."),
		"Debian 13":         strings.Contains(info.OSImage, "Debian GNU/Linux 13"),
		"containerd 2.4.2":  info.ContainerRuntimeVersion == "containerd://2.4.2",
		"kubelet v1.37.2":   info.KubeletVersion == "v1.37.2",
		"boot ID":           info.BootID != "",
		"address 10.0.2.15": hasAddress(nd, "10.0.2.15"),
		"2 CPUs online":     nd.Status.Capacity.Cpu().Value() == 2, // booted with one, the other brought online by run.sh
	} {
		if !ok {
			t.Errorf("System Info lacks %s: %+v, addresses %+v", what, info, nd.Status.Addresses)
		}
	}
	facts := n.exec(t, time.Minute, `
echo "kubelet_cgroup=$(systemctl show -p ControlGroup --value kubelet.service)"
echo "containerd_cgroup=$(systemctl show -p ControlGroup --value containerd.service)"
echo "kubepods=$(cat /sys/fs/cgroup/kubepods.slice/pids.max)"
echo "images=$(ctr -n k8s.io images ls -q | tr '\n' ' ')"`)
	for _, want := range []string{"kubelet_cgroup=/system.slice/kubelet.service", "containerd_cgroup=/system.slice/containerd.service", "kubepods=", agentImage, workloadImage} {
		if !strings.Contains(facts, want) {
			t.Errorf("the node lacks %q:\n%s", want, facts)
		}
	}

	// An earlier test may have deleted the agent's namespace: the namespace
	// controller finishes that before the agent is installed again.
	eventually(t, 3*time.Minute, "no namespace pidpressure being deleted", func() (bool, string) {
		ns, err := cluster.Client.CoreV1().Namespaces().Get(ctx, "pidpressure", metav1.GetOptions{})
		if err != nil {
			return true, ""
		}
		return ns.DeletionTimestamp == nil, fmt.Sprintf("namespace pidpressure %s", ns.Status.Phase)
	})
	// The agent, as a user installs it, with a shorter hysteresis so that
	// the scenarios fit the test's time.
	if out, err := cluster.Kubectl(ctx, cluster.Admin, "apply", "--server-side", "-k", agentOverlay(t)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pod := agentPod(t, n)
	t.Logf("the agent runs as pod %s", pod.Name)
	cond, err := cluster.WaitCondition(ctx, vmNode, 2*time.Minute, corev1.ConditionFalse)
	if err != nil {
		dbg, _, _ := n.run(time.Minute, `nft list ruleset; ip route; ip addr; sysctl net.ipv4.ip_forward net.ipv4.conf.all.rp_filter; pid=$(pgrep -f node-problem-detector | head -1); nsenter -t $pid -n ip route; nsenter -t $pid -n bash -c 'exec 3<>/dev/tcp/10.0.0.1/443 && echo pod-connect-ok'; bash -c 'exec 3<>/dev/tcp/10.0.0.1/443 && echo node-connect-ok'; nft list ruleset | grep counter`)
		t.Fatalf("%v\n%s\n%s", err, n.agentLog(), dbg)
	}
	if cond.Reason != "PIDHeadroomSufficient" {
		t.Errorf("condition %s %s %q, want False PIDHeadroomSufficient", cond.Status, cond.Reason, cond.Message)
	}
	describe, err := cluster.Kubectl(ctx, cluster.Admin, "describe", "node", vmNode)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PIDPressureRisk", "PIDHeadroomSufficient", "MemoryPressure", "DiskPressure", "PIDPressure ", "KubeletHasSufficientPID", "KubeletReady"} {
		if !strings.Contains(describe, want) {
			t.Errorf("kubectl describe node lacks %q:\n%s", want, describe)
		}
	}
	t.Logf("kubectl describe node %s (conditions):\n%s", vmNode, section(describe, "Conditions:"))
}

// agentOverlay is deploy/base with the monitor's quiet period and failure
// window at 30 s (5 and 2 minutes by default), a shorter trend and no
// Event write budget to speak of: a kustomization over the shipped one that
// replaces only its ConfigMap.
func agentOverlay(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "base", "pid-pressure-monitor.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	th, ok := cfg["thresholds"].(map[string]any)
	if !ok {
		t.Fatalf("deploy/base/pid-pressure-monitor.json has no thresholds: %s", b)
	}
	th["quietPeriod"], th["failureWindow"] = "30s", "30s"
	// A trend fitted over a minute, from 200 tasks of growth (10 minutes
	// and 500 shipped): the zombies scenario's growth, capped by the pods'
	// limits, lasts about a minute.
	th["trendWindow"], th["minTrendGrowth"] = "1m", 200
	// The scenarios put a pod at its limit, a unit at its TasksMax, zombies,
	// a restart and the incident into a few minutes: more distinct news than
	// the Event write budget (10 in 10 minutes) lets through at once, which
	// would defer the later scenarios' Events past their waits (found in
	// CI: Restart's PodPIDsLimitReached). The budget itself is proven with
	// the shipped config by TestFleet.
	ev, ok := cfg["events"].(map[string]any)
	if !ok {
		t.Fatalf("deploy/base/pid-pressure-monitor.json has no events: %s", b)
	}
	ev["maxWrites"] = 1000
	if b, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(root, "deploy", "base")) // kustomize takes no absolute path
	if err != nil {
		t.Fatal(err)
	}
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + base +
		"\nconfigMapGenerator:\n  - name: pidpressure-config\n    namespace: pidpressure\n    behavior: replace\n    files:\n      - pid-pressure-monitor.json\n    options:\n      disableNameSuffixHash: true\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pid-pressure-monitor.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// agentPod waits for the DaemonSet's pod on the node to be Running and
// Ready, and returns it.
func agentPod(t *testing.T, n *realNode) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	defer func() {
		if t.Failed() {
			out, _ := cluster.Kubectl(context.Background(), cluster.Admin, "describe", "pods", "-n", "pidpressure")
			t.Logf("kubectl describe pods -n pidpressure:\n%s\n%s", out, n.journal("kubelet.service", "containerd.service"))
		}
	}()
	eventually(t, 4*time.Minute, "the agent's pod Ready", func() (bool, string) {
		pods, err := cluster.Client.CoreV1().Pods("pidpressure").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + vmNode})
		if err != nil {
			return false, err.Error()
		}
		var states []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(p) {
				pod = p
				return true, ""
			}
			states = append(states, fmt.Sprintf("%s %s %+v", p.Name, p.Status.Phase, p.Status.ContainerStatuses))
		}
		return false, strings.Join(states, "; ")
	})
	return pod
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// agentLog is the end of the agent's log, read in the node from the
// kubelet's pod log files.
func (n *realNode) agentLog() string {
	out, _, err := n.run(time.Minute, `tail -n 60 /var/log/pods/pidpressure_*/node-problem-detector/*.log 2>&1`)
	if err != nil {
		return err.Error()
	}
	return "the agent's log (end):\n" + out
}

// journal is the end of the units' journal in the node.
func (n *realNode) journal(units ...string) string {
	out, _, err := n.run(time.Minute, "journalctl --no-pager -o short-precise -n 80 -u "+strings.Join(units, " -u "))
	if err != nil {
		return err.Error()
	}
	return "the node's journal (" + strings.Join(units, ", ") + "):\n" + out
}

// section is the part of kubectl describe output from the heading to the
// next heading.
func section(describe, heading string) string {
	_, rest, ok := strings.Cut(describe, heading)
	if !ok {
		return ""
	}
	lines := strings.Split(rest, "\n")
	out := []string{heading}
	for _, l := range lines[1:] {
		if l != "" && l[0] != ' ' {
			break
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
