package headroom

import "testing"

// TestJudge decides from evidence alone, no files: the kernel's order when
// several limits are exhausted, and a cgroup that refused forks explaining a
// failure when nothing is at its limit any more.
func TestJudge(t *testing.T) {
	t.Parallel()
	node := func(tasks, threadsMax uint64) Node {
		n := Node{Tasks: tasks, PIDMax: 32768, ThreadsMax: threadsMax, PIDLimit: 32468, Namespace: "initial"}
		n.derive()
		return n
	}
	roomy, pidFull, threadsFull := node(1000, 250000), node(32460, 250000), node(31990, 32000)
	user := &User{UID: 1000, Soft: Finite(100), Tasks: 100, AtLimit: true}
	userOK := &User{UID: 1000, Soft: Finite(100), Tasks: 10}
	pod := Cgroup{Path: "/kubepods/podX", Current: 2, Max: Finite(2), AtLimit: true, Kind: KindPod}
	podAbove := Cgroup{Path: "/kubepods", Current: 2, Max: Unlimited()}
	refused := Cgroup{Path: "/system.slice/x.service", Current: 3, Max: Finite(20), Refused: 7}
	for _, tt := range []struct {
		name      string
		ev        Evidence
		n         Node
		layer     Layer
		limit     string
		cgroupWas string
	}{
		{"nothing binds", Evidence{User: userOK}, roomy, LayerNone, "", ""},
		{"user first, though the node and a cgroup are full too", Evidence{User: user, UserPID: 7, Chain: []Cgroup{pod}}, pidFull, LayerUser, "RLIMIT_NPROC", ""},
		{"threads-max before the cgroups", Evidence{Chain: []Cgroup{pod}}, threadsFull, LayerNode, "threads_max", ""},
		{"the deepest cgroup at its limit before pid_max", Evidence{Chain: []Cgroup{pod, podAbove}}, pidFull, LayerCgroup, "pids.max", "/kubepods/podX"},
		{"pid_max", Evidence{Chain: []Cgroup{podAbove}}, pidFull, LayerNode, "pid_max", ""},
		{"a cgroup that refused forks, nothing full now", Evidence{Chain: []Cgroup{podAbove, refused}}, roomy, LayerCgroup, "pids.max", "/system.slice/x.service"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := Judge(tt.ev, tt.n)
			if a.Layer != tt.layer || a.Limit != tt.limit || a.Reason == "" {
				t.Fatalf("Judge = %s %q (%s), want %s %q", a.Layer, a.Limit, a.Reason, tt.layer, tt.limit)
			}
			if got := ""; a.Cgroup != nil {
				got = a.Cgroup.Path
				if got != tt.cgroupWas {
					t.Errorf("cgroup %q, want %q", got, tt.cgroupWas)
				}
			} else if tt.cgroupWas != "" {
				t.Errorf("no cgroup, want %q", tt.cgroupWas)
			}
		})
	}
}
