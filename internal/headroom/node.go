package headroom

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// ReservedPIDs is the kernel's RESERVED_PIDS (include/linux/pid.h): once PID
// allocation has passed it, new PIDs are taken from [300, pid_max) only.
const ReservedPIDs = 300

// Binding names the node-level limit that binds.
type Binding string

// The node-level limits.
const (
	BindingPIDMax     Binding = "pid_max"
	BindingThreadsMax Binding = "threads_max"
)

// Sysctl returns the sysctl name of the limit: kernel.pid_max or kernel.threads-max.
func (b Binding) Sysctl() string {
	if b == BindingThreadsMax {
		return "kernel.threads-max"
	}
	return "kernel.pid_max"
}

// Node is the node layer: tasks against kernel.pid_max and kernel.threads-max.
type Node struct {
	// Tasks is the number of tasks (threads included) that count against the limits.
	Tasks uint64 `json:"tasks"`
	// PIDMax is kernel.pid_max of the sampled PID namespace.
	PIDMax uint64 `json:"pid_max"`
	// ThreadsMax is kernel.threads-max (system-wide).
	ThreadsMax uint64 `json:"threads_max"`
	// LastPID is the last PID allocated in the namespace (ns_last_pid); 0 if unknown.
	LastPID uint64 `json:"last_pid"`
	// LowTasks is the number of tasks holding a PID below 300.
	LowTasks uint64 `json:"low_tasks"`
	// AboveTasks is the number of tasks still holding a PID at or above
	// pid_max: taken before pid_max was lowered (found on the real node,
	// where they made the usage read 114 %).
	AboveTasks uint64 `json:"above_tasks,omitempty"`
	// PIDLimit is the number of tasks the PID space can hold. Before
	// allocation first passes RESERVED_PIDS, PIDs come from [1, pid_max):
	// pid_max−1. After, new PIDs come only from [300, pid_max)
	// (kernel/pid.c alloc_pid), so the space holds pid_max−300 tasks plus
	// those still holding a PID below 300 or at or above pid_max.
	PIDLimit uint64 `json:"pid_limit"`
	// Limit is min(PIDLimit, ThreadsMax): the task count at which fork fails.
	Limit uint64 `json:"limit"`
	// Binding says which of the two Limit comes from.
	Binding Binding `json:"binding"`
	// UsedPercent is Tasks as a percentage of Limit.
	UsedPercent float64 `json:"used_percent"`
	// Namespace is "initial" when the sampler sees the host's PID namespace,
	// "nested" when it is in a child namespace (the counts are then the
	// namespace's own, from a walk of /proc).
	Namespace string `json:"namespace"`
	// TasksSource says where Tasks came from: "loadavg" or "proc".
	TasksSource string `json:"tasks_source"`
}

// Free returns how many more tasks can be created at the node level.
func (n Node) Free() uint64 {
	if n.Tasks >= n.Limit {
		return 0
	}
	return n.Limit - n.Tasks
}

// nodeLimit derives PIDLimit, Limit, Binding and UsedPercent.
func (n *Node) derive() {
	n.PIDLimit = n.PIDMax - 1
	if n.LastPID >= ReservedPIDs && n.PIDMax > ReservedPIDs {
		n.PIDLimit = n.PIDMax - ReservedPIDs + n.LowTasks + n.AboveTasks
	}
	n.Limit, n.Binding = n.PIDLimit, BindingPIDMax
	if n.ThreadsMax > 0 && n.ThreadsMax < n.PIDLimit {
		n.Limit, n.Binding = n.ThreadsMax, BindingThreadsMax
	}
	if n.Limit > 0 {
		n.UsedPercent = float64(n.Tasks) * 100 / float64(n.Limit)
	}
}

// parseLoadavg returns the total task count and the last PID from
// /proc/loadavg.
//
// Format: "0.07 0.04 0.01 1/78 1965\n" — three load averages,
// running/total scheduling entities (tasks), last PID (proc(5)).
func parseLoadavg(b []byte) (tasks, lastPID uint64, err error) {
	f := bytes.Fields(b)
	if len(f) < 5 {
		return 0, 0, fmt.Errorf("loadavg: %d fields, want 5", len(f))
	}
	_, total, ok := bytes.Cut(f[3], []byte{'/'})
	if !ok {
		return 0, 0, fmt.Errorf("loadavg: field 4 %q is not running/total", f[3])
	}
	if tasks, err = strconv.ParseUint(string(total), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("loadavg tasks: %w", err)
	}
	if lastPID, err = strconv.ParseUint(string(f[4]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("loadavg last pid: %w", err)
	}
	return tasks, lastPID, nil
}

// parseNSpid returns the number of PID namespaces a task is in, from the
// NSpid line of /proc/PID/status ("NSpid:\t4242\t12" is two levels).
func parseNSpid(status []byte) (int, bool) {
	for line := range bytes.SplitSeq(status, []byte{'\n'}) {
		if rest, ok := bytes.CutPrefix(line, []byte("NSpid:")); ok {
			return len(bytes.Fields(rest)), true
		}
	}
	return 0, false
}

// BindingValue is the value of the binding sysctl: kernel.threads-max when
// it binds, else kernel.pid_max.
func (n Node) BindingValue() uint64 {
	if n.Binding == BindingThreadsMax {
		return n.ThreadsMax
	}
	return n.PIDMax
}

// PIDNamespace is the inode number of the PID namespace of the root's
// /proc (its /proc/1/ns/pid): the node's, whose pid_max the node sample
// reads; 0 when it cannot be read.
func PIDNamespace(root hostfs.Root) uint32 {
	l, err := os.Readlink(root.ProcPath("1", "ns", "pid"))
	if err != nil {
		return 0
	}
	return parsePIDNamespace(l)
}

// parsePIDNamespace reads "pid:[4026531836]"; 0 if it is not that.
func parsePIDNamespace(link string) uint32 {
	var ino uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(link), "pid:[%d]", &ino); err != nil {
		return 0
	}
	return ino
}
