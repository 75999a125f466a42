package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// TestRelayedFailureBlamesTheRuntime: a failure the kubelet relays from
// the container runtime is judged by the runtime's unit, here at its
// TasksMax, and named as the runtime's, reported by the kubelet; the
// kubelet's own failure stays the kubelet's. On the real node it read
// "kubelet (pid 516, kubelet.service) cannot create threads: no limit at
// its maximum".
func TestRelayedFailureBlamesTheRuntime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for unit, files := range map[string]map[string]string{
		"containerd.service": {"pids.max": "10\n", "pids.current": "10\n", "pids.events": "max 3\n", "pids.events.local": "max 3\n"},
		"kubelet.service":    {"pids.max": "max\n", "pids.current": "40\n", "pids.events": "max 0\n", "pids.events.local": "max 0\n"},
	} {
		d := filepath.Join(dir, "cgroup", "system.slice", unit)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The kubelet's line on the real node while containerd.service was at
	// its TasksMax (TestNode/UnitAtItsTasksMax): a CNI plugin containerd
	// ran could not create a thread, and the kubelet relays the error.
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "journal", "node-vm-relayed.txt"))
	if err != nil {
		t.Fatal(err)
	}
	kubeletRelay, _, _ := strings.Cut(string(b), "\n")
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.NewFakeClock(time.Date(2026, 12, 7, 22, 30, 21, 0, time.UTC))
	d := NewDetector(DetectorConfig{Sources: Config{Root: hostfs.New(dir)}, Verdict: verdict.DefaultConfig()}, m, clk, quietLog(), discardSink{})
	d.hs = []headroom.Hierarchy{{Version: 2, Dir: filepath.Join(dir, "cgroup")}}
	d.runtime = headroom.RuntimeUnit(d.hs)
	d.corr.Record(nodeAt(146))
	kubelet := func(msg string) Report {
		t.Helper()
		h, ok := m.MatchString(msg)
		if !ok {
			t.Fatalf("no match: %s", msg)
		}
		l := logline.New(logline.SourceJournal, msg)
		l.Origin = logline.Origin{PID: 516, UID: 0, Comm: "kubelet", Unit: "kubelet.service", Cgroup: "/system.slice/kubelet.service"}
		l.Time = clk.Now()
		return Report{Kind: KindMatch, Line: l, Hit: h}
	}

	f := d.lineFailure(kubelet(kubeletRelay))
	if a := f.Attribution; a.Layer != headroom.LayerCgroup || a.Cgroup == nil || a.Cgroup.Unit != "containerd.service" {
		t.Errorf("the relayed failure is judged by %+v, want containerd.service at its TasksMax", a)
	}
	if want := "containerd.service (reported by kubelet, pid 516)"; f.Who != want {
		t.Errorf("the relayed failure is named %q, want %q", f.Who, want)
	}

	own := d.lineFailure(kubelet("runtime: failed to create new OS thread (have 3 already; errno=11)"))
	if want := "kubelet (pid 516, kubelet.service)"; own.Who != want {
		t.Errorf("the kubelet's own failure is named %q, want %q", own.Who, want)
	}
	if a := own.Attribution; a.Cgroup != nil && a.Cgroup.Unit == "containerd.service" {
		t.Errorf("the kubelet's own failure is judged by containerd.service: %+v", a)
	}
}
