package headroom

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

func TestTopConsumers(t *testing.T) {
	t.Parallel()
	root := host("cgroupv2-node-vm-zombies")
	hs, err := Hierarchies(root)
	if err != nil {
		t.Fatal(err)
	}
	scan, err := Walk(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The real node's zombie pods outnumber every process: four pods and
	// containerd.service. A process of many threads comes in among them.
	got := TopConsumers(root, hs, scan)
	if len(got) != MaxConsumers || got[0].Kind != ConsumerPod || got[0].Name != "default/zombies" ||
		got[4] != (Consumer{Kind: ConsumerUnit, Name: "containerd.service", Tasks: got[4].Tasks}) {
		t.Fatalf("TopConsumers = %+v, want 5, pod default/zombies first, containerd.service last", got)
	}
	scan.TopProcesses = append([]ProcessTasks{{Comm: "java", PID: 4242, Processes: 1, Tasks: 250}}, scan.TopProcesses...)
	got = TopConsumers(root, hs, scan)
	kinds := map[ConsumerKind]bool{}
	for i, c := range got {
		kinds[c.Kind] = true
		if i > 0 && c.Tasks > got[i-1].Tasks {
			t.Errorf("not most first: %+v", got)
		}
	}
	for _, k := range []ConsumerKind{ConsumerPod, ConsumerProcess} {
		if !kinds[k] {
			t.Errorf("no %s among %+v", k, got)
		}
	}
	if s := Consumers(got); !strings.Contains(s, "java (pid 4242) 250 tasks") {
		t.Errorf("Consumers = %s", s)
	}
}

func TestKeepTop(t *testing.T) {
	t.Parallel()
	var top []ProcessTasks
	for i, n := range []uint64{5, 1, 9, 3, 9, 7, 2, 8} {
		top = keepTop(top, ProcessTasks{Comm: string(rune('a' + i)), Tasks: n})
	}
	want := []ProcessTasks{{Comm: "c", Tasks: 9}, {Comm: "e", Tasks: 9}, {Comm: "h", Tasks: 8}, {Comm: "f", Tasks: 7}, {Comm: "a", Tasks: 5}}
	if diff := cmp.Diff(want, top); diff != "" {
		t.Errorf("keepTop() mismatch (-want +got):\n%s", diff)
	}
}

func TestCgroupPIDs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(rel, content string) { writeTree(t, dir, map[string]string{rel: content}) }
	write("pod/cgroup.procs", "")
	write("pod/c1/cgroup.procs", "10\n11\n")
	write("pod/c2/cgroup.procs", "12\n")
	write("other/cgroup.procs", "99\n")
	h := Hierarchy{Version: 2, Dir: dir}
	got, err := CgroupPIDs(h, "/pod", 100)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []int{10, 11, 12}) {
		t.Errorf("CgroupPIDs(/pod) = %v, %v", got, err)
	}
	if got, _ := CgroupPIDs(h, "/pod", 2); len(got) != 2 {
		t.Errorf("limit 2: %v", got)
	}
	if _, err := CgroupPIDs(h, "/gone", 10); err == nil {
		t.Error("a missing cgroup is not an error")
	}
}

// TestWalkGroupsProcessesByName: 300 shells of a fork bomb are one consumer
// with their count; a lone process keeps its PID.
func TestWalkGroupsProcessesByName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(rel, content string) { writeTree(t, dir, map[string]string{rel: content}) }
	status := func(name string, threads int) string {
		return "Name:\t" + name + "\nState:\tS (sleeping)\nPPid:\t1\nUid:\t0\t0\t0\t0\nThreads:\t" + strconv.Itoa(threads) + "\n"
	}
	for i := range 300 {
		write(filepath.Join("proc", strconv.Itoa(1000+i), "status"), status("bash", 1))
	}
	write("proc/42/status", status("java", 200))
	write("proc/43/status", status("sshd", 1))
	scan, err := Walk(hostfs.New(dir), 0)
	if err != nil {
		t.Fatal(err)
	}
	got := Consumers(TopConsumers(hostfs.New(dir), nil, scan))
	want := "top consumers: bash (300 processes) 300 tasks, java (pid 42) 200 tasks, sshd (pid 43) 1 tasks"
	if got != want {
		t.Errorf("Consumers() = %q, want %q", got, want)
	}
}

// writeTree writes files (path relative to dir: content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
