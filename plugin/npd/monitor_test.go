package npd

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/node-problem-detector/pkg/types"

	"github.com/pidpressure/pidpressure/internal/verdict"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestStatusGolden pins what NPD's exporters receive: the condition with
// its transition time, and a Warning event as severity "warn" with the
// event's last time and its "%" doubled (NPD formats event messages).
func TestStatusGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	c := verdict.Condition{Type: verdict.ConditionType, Status: true, Reason: verdict.ReasonExhausted, LastTransitionTime: t0,
		Message: "kernel.pid_max: 32760 of 32768 PIDs in use; fork failed 12 times in the last 2m0s (kubelet.service)"}
	e := verdict.Event{Reason: verdict.EventUnitTasksMaxReached, Warning: true, Subject: "kubelet.service", Count: 3,
		Message: "kubelet.service is at TasksMax (pids.max 512, 100 % used); 3 forks refused", FirstTime: t0, LastTime: t0.Add(time.Minute)}
	normal := verdict.Condition{Type: verdict.ConditionType, Reason: verdict.ReasonSufficient, LastTransitionTime: t0, Message: "ok"}
	got := map[string]*types.Status{
		"condition":       Status("pid-pressure-monitor", &c, nil),
		"event":           Status("pid-pressure-monitor", &c, &e),
		"normal":          Status("pid-pressure-monitor", &normal, &verdict.Event{Reason: verdict.EventZombiesAccumulating, LastTime: t0}),
		"before-any-cond": Status("pid-pressure-monitor", nil, &e),
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("..", "..", "testdata", "golden", "npd", "status.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./plugin/npd -update)", err)
	}
	if d := cmp.Diff(string(want), string(b)+"\n"); d != "" {
		t.Errorf("status mismatch (-golden +got):\n%s", d)
	}
}

// writeConfig writes a monitor configuration with the live sources off, on
// the given host root.
func writeConfig(t *testing.T, hostRoot, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pid-pressure-monitor.json")
	s := `{"sampleInterval": "200ms", "hostRoot": ` + strconvQuote(hostRoot) + `,
	"sources": {"journal": {"enabled": false}, "kmsg": {"enabled": false}, "pidsEvents": {"enabled": false}, "ebpf": {"mode": "off"}}` + extra + `}`
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func first(t *testing.T, ch <-chan *types.Status) *types.Status {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no status from the monitor in 10s")
		return nil
	}
}

// TestMonitorFakeHost runs the monitor on the fake host at 97 % of pid_max
// (a generated /proc and /sys tree: this machine must not be brought near
// its own pid_max): the first status NPD receives is the True condition.
func TestMonitorFakeHost(t *testing.T) {
	host, err := filepath.Abs(filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMonitor(writeConfig(t, host, `, "source": "pp-test"`))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := m.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	s := first(t, ch)
	if s.Source != "pp-test" || len(s.Conditions) != 1 {
		t.Fatalf("first status %+v", s)
	}
	c := s.Conditions[0]
	if c.Type != "PIDPressureRisk" || c.Status != types.True || c.Reason != "PIDHeadroomLow" || !strings.Contains(c.Message, "pid_max") {
		t.Errorf("first condition %+v, want True PIDHeadroomLow naming pid_max", c)
	}
}

// TestMonitorThisNode runs the monitor on this machine's real /proc and
// /sys: far from its limits, the condition is False.
func TestMonitorThisNode(t *testing.T) {
	m, err := NewMonitor(writeConfig(t, "/", ""))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := m.Start()
	if err != nil {
		t.Fatal(err)
	}
	s := first(t, ch)
	m.Stop()
	if len(s.Conditions) != 1 || s.Conditions[0].Status != types.False || s.Conditions[0].Reason != "PIDHeadroomSufficient" {
		t.Errorf("first status on this node %+v, want False PIDHeadroomSufficient", s)
	}
	m.Stop() // twice is harmless
}

func TestNewMonitorErrors(t *testing.T) {
	if _, err := NewMonitor(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
	bad := writeConfig(t, "/", `, "thresholds": {"warningPercent": 150}`)
	if _, err := NewMonitor(bad); err == nil || !strings.Contains(err.Error(), "thresholds.warningPercent") {
		t.Errorf("bad threshold: %v, want the field path", err)
	}
	if m, err := NewMonitor(""); err != nil || m.conf.Source != "pid-pressure-monitor" {
		t.Errorf("embedded default: %v", err)
	}
}
