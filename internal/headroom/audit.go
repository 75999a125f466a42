package headroom

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// Severity ranks a finding.
type Severity string

// The severities.
const (
	SeverityCritical Severity = "critical"
	SeverityWarning  Severity = "warning"
	SeverityInfo     Severity = "info"
)

// RecommendedPIDMax is the value to raise kernel.pid_max to on 64-bit
// nodes: PID_MAX_LIMIT (4194304, include/linux/threads.h).
const RecommendedPIDMax = 4194304

// Finding is one result of the start-up audit.
type Finding struct {
	Severity Severity `json:"severity"`
	// Check is a stable identifier of the check.
	Check   string `json:"check"`
	Message string `json:"message"`
	Remedy  string `json:"remedy"`
	// Subject is what a check found wanting when it can find several (the
	// unit, the cgroup); "" for a check of the node as a whole.
	Subject string `json:"-"`
}

// Key identifies the finding across audits: its check and its subject,
// not its message, whose counts change from one audit to the next.
func (f Finding) Key() string {
	if f.Subject == "" {
		return f.Check
	}
	return f.Check + " " + f.Subject
}

// Audit checks a node's PID configuration: a low kernel.pid_max,
// kernel.threads-max binding before pid_max, finite TasksMax on node
// components, no pids limit above the pods, the kubelet's PID settings
// (when its config is readable), and sampling from a child PID namespace.
func Audit(root hostfs.Root, n Node, cgroups []Cgroup) []Finding {
	var out []Finding
	if n.PIDMax < RecommendedPIDMax {
		sev := SeverityInfo
		switch {
		case n.UsedPercent >= 50:
			sev = SeverityCritical
		case n.PIDMax <= 32768:
			sev = SeverityWarning
		}
		out = append(out, Finding{
			Severity: sev, Check: "PIDMaxLow",
			Message: fmt.Sprintf("kernel.pid_max is %d (%d tasks now, %.1f %% of %d usable); every thread of every pod takes a PID", n.PIDMax, n.Tasks, n.UsedPercent, n.Limit),
			Remedy:  fmt.Sprintf("raise kernel.pid_max (now %d) to %d: sysctl -w kernel.pid_max=%d and persist it in /etc/sysctl.d", n.PIDMax, RecommendedPIDMax, RecommendedPIDMax),
		})
	}
	if n.Binding == BindingThreadsMax {
		// Large machines have threads-max below 4194304 with no harm; it
		// matters when it is small or the node is using much of it.
		sev := SeverityInfo
		if n.ThreadsMax < 1_000_000 || n.UsedPercent >= 50 {
			sev = SeverityWarning
		}
		out = append(out, Finding{
			Severity: sev, Check: "ThreadsMaxBinding",
			Message: fmt.Sprintf("kernel.threads-max (%d) is below the usable PIDs (%d): it binds first", n.ThreadsMax, n.PIDLimit),
			Remedy:  fmt.Sprintf("raise kernel.threads-max to at least %d, or accept it as the node's task limit", n.PIDLimit),
		})
	}
	if n.Namespace == "nested" {
		out = append(out, Finding{
			Severity: SeverityWarning, Check: "NotHostPIDNamespace",
			Message: "sampling a child PID namespace: the task count and pid_max are the namespace's, not the node's",
			Remedy:  "run the agent with hostPID: true (and the host's /proc) to watch the node",
		})
	}
	sawKubepods := false
	for _, c := range cgroups {
		switch c.Kind {
		case KindUnit:
			if !c.Max.Unlimited && !c.Estimated {
				out = append(out, Finding{
					Severity: SeverityWarning, Check: "UnitTasksMaxFinite", Subject: c.Unit,
					Message: fmt.Sprintf("%s has TasksMax (pids.max) %d with %d tasks; when it is reached the node component cannot start threads", c.Unit, c.Max.Value, c.Current),
					Remedy:  fmt.Sprintf("set TasksMax=infinity for %s in a drop-in (systemctl edit %s) and restart it", c.Unit, c.Unit),
				})
			}
		case KindKubepods:
			sawKubepods = true
			if c.Max.Unlimited && !c.Estimated {
				out = append(out, Finding{
					Severity: SeverityWarning, Check: "PodsUnlimited", Subject: c.Path,
					Message: fmt.Sprintf("%s has no pids limit: pods together can take every PID of the node", c.Path),
					Remedy:  "reserve PIDs for the system: set kubelet systemReserved/kubeReserved pid, and podPidsLimit",
				})
			}
		case KindQoS, KindPod, KindContainer, KindNamed:
			// A pod's own limit contains the pod by design; the audit
			// judges the node's configuration, not each pod.
		}
	}
	out = append(out, auditKubelet(root, sawKubepods)...)
	return out
}

// auditKubelet reads /var/lib/kubelet/config.yaml, when readable, for
// podPidsLimit and a pid.available eviction threshold. It only looks for the
// keys (no YAML parsing): a value it cannot read is reported as unset.
func auditKubelet(root hostfs.Root, kubernetes bool) []Finding {
	b, err := hostfs.ReadSmall(root.VarPath("lib", "kubelet", "config.yaml"))
	if err != nil {
		if kubernetes {
			return []Finding{{Severity: SeverityInfo, Check: "KubeletConfigUnreadable",
				Message: fmt.Sprintf("cannot read the kubelet config: %v", err),
				Remedy:  "mount /var/lib/kubelet/config.yaml read-only to audit podPidsLimit and eviction thresholds"}}
		}
		return nil
	}
	podPids, pidAvailable := "", false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "podPidsLimit:"); ok {
			podPids = strings.TrimSpace(v)
		}
		if strings.Contains(line, "pid.available") {
			pidAvailable = true
		}
	}
	var out []Finding
	if podPids == "" || podPids == "-1" || podPids == "0" {
		out = append(out, Finding{Severity: SeverityWarning, Check: "PodPidsLimitUnset",
			Message: "kubelet podPidsLimit is unset: one pod can take every PID of the node",
			Remedy:  "set podPidsLimit in the kubelet config (e.g. 4096) so a runaway pod hits its own limit"})
	}
	if !pidAvailable {
		out = append(out, Finding{Severity: SeverityWarning, Check: "PIDEvictionThresholdUnset",
			Message: "kubelet has no pid.available eviction threshold: its PIDPressure condition never turns True",
			Remedy:  "add evictionHard pid.available (e.g. \"10%\") to the kubelet config"})
	}
	return out
}
