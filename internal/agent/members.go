package agent

import (
	"slices"
	"time"

	"github.com/pidpressure/pidpressure/internal/headroom"
)

// maxMembers bounds the processes remembered with their cgroup.
const maxMembers = 4096

// member is the cgroup a process was in when that cgroup refused forks (or
// a line of the process was attributed to it), and when.
type member struct {
	cgroup headroom.Cgroup
	at     time.Time
}

// members remembers, for a while, the cgroup of processes seen in a cgroup
// that refused forks. A process often dies of its failure before its line is
// read; its cgroup is then found here. The zero value is ready to use.
type members map[int]member

// remember records pid's cgroup at now. When full it first forgets the
// oldest half; it never grows past maxMembers.
func (m *members) remember(pid int, c headroom.Cgroup, now time.Time) {
	if pid <= 0 {
		return
	}
	if *m == nil {
		*m = members{}
	}
	if _, ok := (*m)[pid]; !ok && len(*m) >= maxMembers {
		m.forgetOldest(maxMembers / 2)
	}
	(*m)[pid] = member{cgroup: c, at: now}
}

// forgetOldest drops the n oldest entries (and any as old as the n-th).
func (m members) forgetOldest(n int) {
	times := make([]time.Time, 0, len(m))
	for _, e := range m {
		times = append(times, e.at)
	}
	if n <= 0 || len(times) == 0 {
		return
	}
	slices.SortFunc(times, time.Time.Compare)
	cut := times[min(n, len(times))-1]
	for pid, e := range m {
		if !e.at.After(cut) {
			delete(m, pid)
		}
	}
}

// lookup returns pid's cgroup if it was recorded within window of now.
func (m members) lookup(pid int, now time.Time, window time.Duration) (headroom.Cgroup, bool) {
	e, ok := m[pid]
	if !ok || now.Sub(e.at) > window {
		return headroom.Cgroup{}, false
	}
	return e.cgroup, true
}
