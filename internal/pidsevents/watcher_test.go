package pidsevents

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/testenv"
)

func next(t *testing.T, w *Watcher, within time.Duration) Refusal {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	ev, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func writeEvents(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "pids.events"), []byte(fmt.Sprintf("max %d\n", n)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNotificationAndRestart uses files laid out like a cgroup v2 pod (this
// machine has no v2 pids controller; the kernel's v2 notification is a
// file-modified event, as a write to these files is). The poll is an hour,
// so only inotify can deliver the event in time.
func TestNotificationAndRestart(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	pod := filepath.Join(root, "kubepods.slice", "kubepods-pod1.slice")
	if err := os.MkdirAll(pod, 0o755); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, pod, 7)
	h := headroom.Hierarchy{Version: 2, Dir: root}
	target := Target{Hierarchy: h, Path: "/kubepods.slice/kubepods-pod1.slice"}
	w, err := New(Options{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.Set([]Target{target}, nil, true) // first start: 7 past refusals are history
	go func() {
		time.Sleep(100 * time.Millisecond)
		writeEvents(t, pod, 10)
	}()
	ev := next(t, w, 10*time.Second)
	if ev.Refused != 3 || ev.Total != 10 || ev.Target.Key() != "v2:/kubepods.slice/kubepods-pod1.slice" {
		t.Errorf("event = %+v, want 3 new of 10", ev)
	}
	saved := w.Counters()
	_ = w.Close()

	// While the agent is down, 5 more forks are refused.
	writeEvents(t, pod, 15)
	w2, err := New(Options{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w2.Close() }()
	w2.Set([]Target{target}, saved, false)
	if ev := next(t, w2, 5*time.Second); ev.Refused != 5 || ev.Total != 15 {
		t.Errorf("after restart: %+v, want the 5 missed, once", ev)
	}
	// The cgroup is recreated: its counter restarts.
	writeEvents(t, pod, 2)
	if ev := next(t, w2, 10*time.Second); ev.Refused != 2 {
		t.Errorf("after reset: %+v, want 2", ev)
	}
}

func TestNewCgroupReportedInFull(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeEvents(t, root, 4) // a root-level file standing in for a new pod's
	w, err := New(Options{Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	w.Set([]Target{{Hierarchy: headroom.Hierarchy{Version: 1, Dir: root}, Path: "/"}}, nil, false)
	if ev := next(t, w, 5*time.Second); ev.Refused != 4 {
		t.Errorf("event = %+v, want all 4", ev)
	}
}

func TestCloseUnblocksNext(t *testing.T) {
	t.Parallel()
	w, err := New(Options{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := w.Next(context.Background()); done <- err }()
	testenv.WaitBlocked(t, "pidsevents.(*Watcher).Next", 5*time.Second)
	_ = w.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
}

// TestRealCgroupRefusal: a real v1 pids cgroup refuses a real fork; the
// watcher (polling, as v1 does not notify) reports it.
func TestRealCgroupRefusal(t *testing.T) {
	if testing.Short() {
		t.Skip("live-host test")
	}
	hier := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(hier, "cgroup.procs")); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and the cgroup v1 pids controller")
	}
	name := fmt.Sprintf("pptest-events-%d", os.Getpid())
	dir := filepath.Join(hier, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 40; i++ {
			b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, p := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(p); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	w.Set([]Target{{Hierarchy: headroom.Hierarchy{Version: 1, Dir: hier}, Path: "/" + name}}, nil, true)
	for i := 0; i < 3; i++ {
		_ = exec.Command("sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs; /bin/true", dir)).Run()
	}
	var got uint64
	for got < 3 {
		ev := next(t, w, 10*time.Second)
		got += ev.Refused
	}
	if got != 3 {
		t.Errorf("reported %d refused forks, want 3", got)
	}
}
