package headroom

import (
	"cmp"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// ConsumerKind says what a Consumer is.
type ConsumerKind string

// The consumer kinds.
const (
	ConsumerPod     ConsumerKind = "pod"
	ConsumerUnit    ConsumerKind = "unit"
	ConsumerProcess ConsumerKind = "process"
)

// Consumer is a pod, a systemd unit or a process that holds many of the
// node's tasks: who to look at when a node-level limit binds.
type Consumer struct {
	Kind ConsumerKind
	// Name is namespace/name for a pod ("pod <uid>" when the name is
	// unknown), the unit's name, "comm (pid N)" for a process, or
	// "comm (N processes)" for the processes of one name.
	Name  string
	Tasks uint64
}

// String renders a consumer for a message: "pod default/web 2000 tasks".
func (c Consumer) String() string {
	if c.Kind == ConsumerPod && !strings.HasPrefix(c.Name, "pod ") {
		return fmt.Sprintf("pod %s %d tasks", c.Name, c.Tasks)
	}
	return fmt.Sprintf("%s %d tasks", c.Name, c.Tasks)
}

// MaxConsumers bounds TopConsumers.
const MaxConsumers = 5

// TopConsumers returns the largest consumers of the node's tasks, most
// first, at most MaxConsumers: the pods and the units of system.slice from
// their cgroups' pids.current (one read each, in the first hierarchy that
// has them), and the processes from scan. A pod and a process inside it can
// both be listed: the pod says where, the process says what.
func TopConsumers(root hostfs.Root, hs []Hierarchy, scan Scan) []Consumer {
	var out []Consumer
	for _, h := range hs {
		found := podConsumers(root, h)
		found = append(found, unitConsumers(h)...)
		if len(found) > 0 {
			out = append(out, found...)
			break
		}
	}
	for _, p := range scan.TopProcesses {
		name := fmt.Sprintf("%s (pid %d)", p.Comm, p.PID)
		if p.Processes > 1 {
			name = fmt.Sprintf("%s (%d processes)", p.Comm, p.Processes)
		}
		out = append(out, Consumer{Kind: ConsumerProcess, Name: name, Tasks: p.Tasks})
	}
	slices.SortStableFunc(out, func(a, b Consumer) int {
		return cmp.Or(cmp.Compare(b.Tasks, a.Tasks), cmp.Compare(a.Name, b.Name))
	})
	out = slices.DeleteFunc(out, func(c Consumer) bool { return c.Tasks == 0 })
	if len(out) > MaxConsumers {
		out = out[:MaxConsumers]
	}
	return out
}

func podConsumers(root hostfs.Root, h Hierarchy) []Consumer {
	ts, _ := Discover(root, h) // what was found before an error still counts
	var out []Consumer
	for _, t := range ts {
		if t.Kind != KindPod {
			continue
		}
		c, err := ReadCgroup(h, t.Path)
		if err != nil {
			continue // the pod is gone
		}
		out = append(out, Consumer{Kind: ConsumerPod, Name: t.Pod.String(), Tasks: c.Current})
	}
	return out
}

func unitConsumers(h Hierarchy) []Consumer {
	units, err := subdirs(filepath.Join(h.Dir, "system.slice"))
	if err != nil {
		return nil
	}
	var out []Consumer
	for _, u := range units {
		if !strings.HasSuffix(u, ".service") {
			continue
		}
		c, err := ReadCgroup(h, path.Join("/system.slice", u))
		if err != nil {
			continue
		}
		out = append(out, Consumer{Kind: ConsumerUnit, Name: u, Tasks: c.Current})
	}
	return out
}

// Consumers renders consumers for a message: "top consumers: pod
// default/web 2000 tasks, java (pid 42) 1800 tasks"; "" for none.
func Consumers(cs []Consumer) string {
	if len(cs) == 0 {
		return ""
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return "top consumers: " + strings.Join(parts, ", ")
}
