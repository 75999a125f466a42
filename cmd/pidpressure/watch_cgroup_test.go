package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/reproduce"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// TestWatchCgroupScenarios runs watch on this machine and, one after the
// other: a non-root user forges a kubelet line (the condition must stay
// False); a pod-like cgroup (cgroupfs driver, kubepods/pod<uid>) at its
// pids.max refuses 10,000 real forks (a few PodPIDsLimitReached events with
// the counts, no condition change); a real Go program in a cgroup standing in
// for system.slice/kubelet.service fails at its limit (UnitTasksMaxReached,
// and the condition turns True).
func TestWatchCgroupScenarios(t *testing.T) {
	skipLive(t)
	pids := "/sys/fs/cgroup/pids"
	unified := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(pids, "cgroup.procs")); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and the cgroup v1 pids controller")
	}
	for _, bin := range []string{"python3", "setpriv", "logger", "systemd-cat", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	journald.Ensure(t)
	if _, err := os.Stat(filepath.Join(pids, "kubepods")); err == nil {
		t.Skip("this machine already has a kubepods cgroup")
	}
	goBomb := buildGoThreads(t)

	// The cgroups exist before watch starts, so that its discovery finds them.
	uid := fmt.Sprintf("0f3e1a2b-4c5d-4e6f-8a9b-%012d", os.Getpid())
	podDir := filepath.Join(pids, "kubepods", "pod"+uid)
	unitPids := filepath.Join(pids, "system.slice", "kubelet.service")
	unitUnified := filepath.Join(unified, "system.slice", "kubelet.service")
	for _, d := range []string{podDir, unitPids, unitUnified} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{podDir, filepath.Dir(podDir), unitPids, filepath.Dir(unitPids), unitUnified, filepath.Dir(unitUnified)} {
			removeCgroup(t, d)
		}
	})
	mustWrite(t, filepath.Join(podDir, "pids.max"), "2")
	mustWrite(t, filepath.Join(unitPids, "pids.max"), "12")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	args, _ := json.Marshal([]string{"watch", "-o", "jsonl", "--sample-interval", "500ms", "--failure-window", "5s", "--quiet-period", "5s", "--event-interval", "5s",
		"--metrics-address", addr})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, self)
	w.Env = append(os.Environ(), "PIDPRESSURE_AS_CLI="+string(args))
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut syncBuffer
	w.Stderr = &errOut
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("watch logged:\n%s", errOut.String())
		}
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Process.Signal(syscall.SIGTERM); _ = w.Wait() })
	var mu sync.Mutex
	var recs []watchRecord
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			var r watchRecord
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				mu.Lock()
				recs = append(recs, r)
				mu.Unlock()
			}
		}
	}()
	snapshot := func() []watchRecord { mu.Lock(); defer mu.Unlock(); return append([]watchRecord(nil), recs...) }
	waitFor(t, 20*time.Second, func() bool { return len(snapshot()) > 0 })
	// The sources start after the first record: /healthz answers 200 once
	// every enabled source that this host supports runs.
	waitFor(t, 20*time.Second, func() bool { code, _ := get("http://" + addr + "/healthz"); return code == http.StatusOK })
	trueConditions := func(rs []watchRecord) (n int) {
		for _, r := range rs {
			if r.Kind == "condition" && r.Status == "True" {
				n++
			}
		}
		return n
	}

	// 1. A forged line from a non-root user claiming to be kubelet.
	forge := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"logger", "-u", "/run/systemd/journal/dev-log", "-t", "kubelet", "runtime: failed to create new OS thread (have 15 already; errno=11)")
	if out, err := forge.CombinedOutput(); err != nil {
		t.Fatalf("logger: %v %s", err, out)
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, r := range snapshot() {
			if r.Kind == "event" && r.Reason == "ThreadCreationFailed" {
				return true
			}
		}
		return false
	})
	// A condition the line changed is printed before the line's Event (the
	// detector reports the condition, then the Events, of each evaluation).
	if n := trueConditions(snapshot()); n != 0 {
		t.Fatalf("a forged line turned the condition True: %+v", snapshot())
	}

	// 2. 10,000 real refused forks in a pod at its pids.max. The real
	// interpreter, not a wrapper script that would fork before it starts.
	pyPath, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Skipf("python3: %v", err)
	}
	if refused := refuseForks(t, strings.TrimSpace(string(pyPath)), podDir, 10000, true); refused != 10000 {
		t.Fatalf("python saw %d refused forks, want 10000", refused)
	}
	if got := readUintFileField(t, filepath.Join(podDir, "pids.events")); got < 10000 {
		t.Fatalf("pids.events max = %d, want ≥ 10000", got)
	}
	// The first event is announced at once; the storm's total arrives with
	// the aggregated announcement at the end of the event interval.
	waitFor(t, 20*time.Second, func() bool {
		for _, r := range snapshot() {
			if r.Kind == "event" && r.Reason == "PodPIDsLimitReached" && refusedIn(r.Message) >= 10000 {
				return true
			}
		}
		return false
	})
	var podEvents []watchRecord
	for _, r := range snapshot() {
		if r.Kind == "event" && (r.Reason == "PodPIDsLimitReached" || strings.Contains(r.Message, "pod"+uid) || strings.Contains(r.Subject, uid)) {
			podEvents = append(podEvents, r)
		}
	}
	if len(podEvents) == 0 || len(podEvents) > 10 {
		t.Errorf("%d events for 10,000 refused forks in one pod, want 1–10: %+v", len(podEvents), podEvents)
	}
	if last := podEvents[len(podEvents)-1]; refusedIn(last.Message) < 10000 || last.Count < 2 {
		t.Errorf("the last pod event does not carry the storm's count: %+v", last)
	}
	if n := trueConditions(snapshot()); n != 0 {
		t.Errorf("a pod at its own limit turned the node condition True: %+v", snapshot())
	}
	t.Logf("10,000 refused forks in one pod: %d event(s); last: %s", len(podEvents), podEvents[len(podEvents)-1].Message)

	// The metrics tell the same story: the pod's layer at its limit, the
	// refusals counted, the storm aggregated, the forged line by its trust.
	_, body := get("http://" + addr + "/metrics")
	podPath := "/kubepods/pod" + uid
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
		max    float64
	}{
		{"pidpressure_cgroup_limit_tasks", []string{"cgroup", podPath, "kind", "pod"}, 2, 2},
		{"pidpressure_cgroup_headroom_tasks", []string{"cgroup", podPath}, 0, 1},
		{"pidpressure_cgroup_pids_max_events_total", []string{"cgroup", podPath}, 10000, 20000},
		{"pidpressure_rejected_forks_total", []string{"cgroup", podPath}, 10000, 20000},
		{"pidpressure_events_total", []string{"reason", "PodPIDsLimitReached", "outcome", "announced"}, 1, 10},
		{"pidpressure_events_total", []string{"reason", "PodPIDsLimitReached", "outcome", "aggregated"}, 1, 20000},
		{"pidpressure_matches_total", []string{"family", "go", "trust", "attributed"}, 1, 1e9},
		{"pidpressure_condition_true", nil, 0, 0},
		{"pidpressure_source_up", []string{"source", "pids.events"}, 1, 1},
	} {
		if v, ok := metricValue(body, c.name, c.labels...); !ok || v < c.min || v > c.max {
			t.Errorf("%s%v = %v (found %v), want %v–%v", c.name, c.labels, v, ok, c.min, c.max)
		}
	}

	// 3. A real Go program failing at kubelet.service's TasksMax.
	unit := exec.Command("sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs; echo $$ > %s/cgroup.procs; exec systemd-cat -t kubelet %s", unitUnified, unitPids, goBomb))
	_ = unit.Run() // it dies of newosproc
	waitFor(t, 15*time.Second, func() bool {
		var unitEvent, trueCond bool
		for _, r := range snapshot() {
			if r.Kind == "event" && r.Reason == "UnitTasksMaxReached" && r.Subject == "kubelet.service" {
				unitEvent = true
			}
			if r.Kind == "condition" && r.Status == "True" && r.Reason == "PIDExhausted" && strings.Contains(r.Message, "kubelet.service reached its TasksMax (pids.max 12 of /system.slice/kubelet.service)") {
				trueCond = true
			}
		}
		return unitEvent && trueCond
	})
	_, body = get("http://" + addr + "/metrics")
	if v, ok := metricValue(body, "pidpressure_condition_reason", "reason", "PIDExhausted"); !ok || v != 1 {
		t.Errorf("pidpressure_condition_reason{reason=PIDExhausted} = %v (found %v), want 1", v, ok)
	}
	if v, ok := metricValue(body, "pidpressure_cgroup_limit_tasks", "cgroup", "/system.slice/kubelet.service", "kind", "unit"); !ok || v != 12 {
		t.Errorf("kubelet.service's TasksMax in the metrics = %v (found %v), want 12", v, ok)
	}
	if code, health := get("http://" + addr + "/healthz"); code != http.StatusOK || !strings.Contains(health, "journal: up") || !strings.Contains(health, "kmsg: up") {
		t.Errorf("/healthz = %d %q, want 200 with every source up", code, health)
	}
}

// refuseForks runs a real Python interpreter (not a wrapper script that
// would fork before it starts) in cgroupDir and has it try n forks, each
// child exiting at once; with holdOne, a first child stays for a minute to
// hold one of the cgroup's PIDs. It returns how many forks were refused.
func refuseForks(t *testing.T, python, cgroupDir string, n int, holdOne bool) int {
	t.Helper()
	hold := ""
	if holdOne {
		hold = "if os.fork() == 0:\n    time.sleep(60); os._exit(0)\n"
	}
	p := exec.Command(python, "-c", "import os, sys, time\nsys.stdin.readline()\n"+hold+`
refused = 0
for i in range(`+strconv.Itoa(n)+`):
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    except OSError:
        refused += 1
print(refused)
`)
	in, _ := p.StdinPipe()
	out, _ := p.StdoutPipe()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(cgroupDir, "cgroup.procs"), strconv.Itoa(p.Process.Pid))
	_, _ = in.Write([]byte("go\n"))
	line, _ := bufio.NewReader(out).ReadString('\n')
	_ = p.Wait()
	refused, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("python printed %q: %v", line, err)
	}
	return refused
}

// refusedIn returns N from "…, N forks refused…" in a message (0 if none).
func refusedIn(msg string) int {
	before, _, ok := strings.Cut(msg, " forks refused")
	if !ok {
		return 0
	}
	f := strings.Fields(before)
	n, _ := strconv.Atoi(f[len(f)-1])
	return n
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildGoThreads builds the Go program that creates threads until the
// runtime fails (reproduce's go-threads, testdata/captured/src/gothreads.go).
func buildGoThreads(t *testing.T) string {
	t.Helper()
	p, _ := reproduce.Named("go-threads")
	argv, err := p.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return argv[0]
}
