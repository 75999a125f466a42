package headroom

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTopConsumers(t *testing.T) {
	t.Parallel()
	root := host("cgroupv2-systemd-pod-at-limit")
	hs, err := Hierarchies(root)
	if err != nil {
		t.Fatal(err)
	}
	scan, err := Walk(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := TopConsumers(root, hs, scan)
	if len(got) == 0 || len(got) > MaxConsumers {
		t.Fatalf("TopConsumers = %+v", got)
	}
	kinds := map[ConsumerKind]bool{}
	for i, c := range got {
		kinds[c.Kind] = true
		if i > 0 && c.Tasks > got[i-1].Tasks {
			t.Errorf("not most first: %+v", got)
		}
	}
	for _, k := range []ConsumerKind{ConsumerPod, ConsumerUnit, ConsumerProcess} {
		if !kinds[k] {
			t.Errorf("no %s among %+v", k, got)
		}
	}
	t.Log(Consumers(got))
}

func TestKeepTop(t *testing.T) {
	t.Parallel()
	var top []ProcessTasks
	for i, n := range []uint64{5, 1, 9, 3, 9, 7, 2, 8} {
		top = keepTop(top, ProcessTasks{PID: 100 + i, Tasks: n})
	}
	want := []ProcessTasks{{PID: 102, Tasks: 9}, {PID: 104, Tasks: 9}, {PID: 107, Tasks: 8}, {PID: 105, Tasks: 7}, {PID: 100, Tasks: 5}}
	if diff := cmp.Diff(want, top); diff != "" {
		t.Errorf("keepTop() mismatch (-want +got):\n%s", diff)
	}
}

func TestCgroupPIDs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
