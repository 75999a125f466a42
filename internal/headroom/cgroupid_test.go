package headroom

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestCgroupIDs resolves directory inode numbers (a cgroup's id) to paths
// as in /proc/PID/cgroup, and walks the hierarchy again for an unknown id
// at most once a second.
func TestCgroupIDs(t *testing.T) {
	dir := t.TempDir()
	pod := filepath.Join(dir, "kubepods.slice", "kubepods-pod1.slice")
	if err := os.MkdirAll(pod, 0o755); err != nil {
		t.Fatal(err)
	}
	clk := testclock.NewFakePassiveClock(time.Now())
	ids := NewCgroupIDs(Hierarchy{Version: 2, Dir: dir}, clk)
	for p, want := range map[string]string{dir: "/", pod: "/kubepods.slice/kubepods-pod1.slice"} {
		if got, ok := ids.Path(inode(t, p)); !ok || got != want {
			t.Errorf("Path(%s) = %q, %v; want %q", p, got, ok, want)
		}
	}
	if _, ok := ids.Path(0); ok {
		t.Error("id 0 resolved")
	}
	// A cgroup made after the walk is found by the next walk, which comes
	// only a second after the last.
	late := filepath.Join(dir, "system.slice")
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := ids.Path(inode(t, late)); ok {
		t.Error("found a cgroup made after the walk without walking again")
	}
	clk.SetTime(clk.Now().Add(time.Second))
	if got, ok := ids.Path(inode(t, late)); !ok || got != "/system.slice" {
		t.Errorf("after a second: Path = %q, %v; want /system.slice", got, ok)
	}
}
