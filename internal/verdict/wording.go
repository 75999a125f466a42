package verdict

import (
	"fmt"
	"time"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

// atLimit says how a cgroup met its pids.max, called limit, in words that
// do not depend on whether the tasks that hit it are still there (a process
// often dies of the failure before its line is read): "reached its TasksMax
// (pids.max 12 of /system.slice/kubelet.service): 20 forks refused, 0 tasks
// now".
func atLimit(cg *headroom.Cgroup, limit string) string {
	return fmt.Sprintf("reached its %s (pids.max %d of %s): %d forks refused, %d tasks now", limit, cg.Max.Value, cg.Path, cg.Refused, cg.Current)
}

// zombieTrend says how a parent's zombies changed since the previous
// census: " (up 30 in 1m0s)", " (none at the last census 1m0s ago)", "".
func zombieTrend(prev map[int]uint64, prevAt time.Time, z headroom.ZombieParent, now time.Time) string {
	if prev == nil {
		return ""
	}
	ago := now.Sub(prevAt).Round(time.Second)
	before, ok := prev[z.PID]
	switch {
	case !ok:
		return fmt.Sprintf(" (new since the census %s ago)", ago)
	case z.Zombies > before:
		return fmt.Sprintf(" (up %d in %s)", z.Zombies-before, ago)
	case z.Zombies < before:
		return fmt.Sprintf(" (down %d in %s)", before-z.Zombies, ago)
	}
	return fmt.Sprintf(" (unchanged in %s)", ago)
}

// nodeNumbers renders the node layer the way an on-call note would, with
// what to do.
func nodeNumbers(n headroom.Node) string {
	return n.UsagePercent() + "; " + remedy(n)
}

// nodeNumbers is the node layer with what to do and who consumes it.
func (c *Correlator) nodeNumbers(n headroom.Node) string {
	return withConsumers(nodeNumbers(n), c.consumers)
}

// kernelCount says how many refusals the kernel counted, as the start of a
// node failure's message ("" when none were counted).
func kernelCount(n uint64) string {
	if n == 0 {
		return ""
	}
	if n == 1 {
		return "the kernel counted 1 refused creation; "
	}
	return fmt.Sprintf("the kernel counted %d refused creations; ", n)
}

// withConsumers appends the top consumers to a message; they come last, so
// that a clipped message loses them before the numbers and the remedy.
func withConsumers(msg string, cs []headroom.Consumer) string {
	if s := headroom.Consumers(cs); s != "" {
		return msg + "; " + s
	}
	return msg
}

func remedy(n headroom.Node) string {
	if n.Binding == headroom.BindingThreadsMax {
		return fmt.Sprintf("raise kernel.threads-max (now %d)", n.ThreadsMax)
	}
	if n.PIDMax < headroom.RecommendedPIDMax {
		return fmt.Sprintf("raise kernel.pid_max (e.g. %d)", headroom.RecommendedPIDMax)
	}
	return "find what is creating tasks (pidpressure diagnose)"
}
