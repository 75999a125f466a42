package headroom

import (
	"fmt"
	"time"
)

// The words of every reason the judging gives, and of the node's usage,
// which the condition, the Events, diagnose and check all state: each
// phrase is built here once. The condition's and the Events' own sentences
// are in internal/verdict/wording.go, from these.

// Usage is the node's tasks against its usable limit:
// "node tasks 31600 of 32467 usable".
func (n Node) Usage() string {
	return fmt.Sprintf("node tasks %d of %d usable", n.Tasks, n.Limit)
}

// BindingLimit is the binding sysctl and its value: "kernel.pid_max=32768".
func (n Node) BindingLimit() string {
	return fmt.Sprintf("%s=%d", n.Binding.Sysctl(), n.BindingValue())
}

// UsageBinding is the usage with the limit that binds:
// "node tasks 31600 of 32467 usable, binding limit kernel.pid_max=32768".
func (n Node) UsageBinding() string {
	return n.Usage() + ", binding limit " + n.BindingLimit()
}

// UsagePercent is the usage with its share and the limit that binds, as a
// condition states it: "node tasks 140 of 23696 usable (1%), binding limit
// kernel.threads-max=23696".
func (n Node) UsagePercent() string {
	return fmt.Sprintf("%s (%.0f%%), binding limit %s", n.Usage(), n.UsedPercent, n.BindingLimit())
}

// usageDetail is the usage with its share, the PIDs free and the limit
// that binds first, for a node where nothing is at its limit.
func (n Node) usageDetail() string {
	return fmt.Sprintf("%s (%.1f %%, %d free, %s binds first); no pids cgroup or RLIMIT_NPROC at its limit", n.Usage(), n.UsedPercent, n.Free(), n.Binding.Sysctl())
}

// The reasons an Attribution gives, one per way a limit binds.

func reasonUser(u *User, pid int) string {
	return fmt.Sprintf("uid %d has %d tasks, RLIMIT_NPROC of pid %d is %d", u.UID, u.Tasks, pid, u.Soft.Value)
}

func reasonCgroupAtLimit(c *Cgroup) string {
	return fmt.Sprintf("cgroup %s has %d tasks of pids.max %d (%d forks refused)", c.Path, c.Current, c.Max.Value, c.Refused)
}

func reasonCgroupRefused(c *Cgroup) string {
	return fmt.Sprintf("cgroup %s has refused %d forks at pids.max %d (%d tasks now)", c.Path, c.Refused, c.Max.Value, c.Current)
}

func reasonUnexplained(n Node) string {
	return "no limit at its maximum: " + n.usageDetail() +
		". A failure now is not explained by a PID limit: thread-stack memory or vm.max_map_count can also make fork and pthread_create fail with EAGAIN"
}

func reasonAllWell(n Node) string {
	return "nothing is at its limit: " + n.usageDetail()
}

// ReasonMember is the reason for a failure of a process that was in a
// cgroup when that cgroup refused forks (the agent's membership record).
func ReasonMember(c Cgroup, pid int) string {
	return fmt.Sprintf("cgroup %s refused forks at pids.max %s while pid %d was in it", c.Path, c.Max, pid)
}

// ReasonReadLate is the reason for a failure read long after it was
// logged: the limits of now say nothing of then.
func ReasonReadLate(late time.Duration, n Node) string {
	return fmt.Sprintf("logged %s before it was read (the agent was not running), so the limit that refused it cannot be checked now; %s now", late.Round(time.Second), n.Usage())
}
