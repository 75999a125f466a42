package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// TestWatchPIDNamespaceExhaustion runs "watch -o jsonl" inside a new PID
// namespace whose pid_max is 500, as the agent runs with hostPID on a node.
// Real bash fork loops, logging through journald, exhaust the namespace;
// watch must print PIDPressureRisk=True with PIDExhausted within 5 s of the
// start of the exhaustion, and PIDHeadroomSufficient again after the quiet
// period once they have exited.
func TestWatchPIDNamespaceExhaustion(t *testing.T) {
	skipLive(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare")
	}
	for _, bin := range []string{"unshare", "systemd-cat", "bash"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	journald.Ensure(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal([]string{"watch", "-o", "jsonl", "--no-pids-events", "--sample-interval", "500ms",
		"--failure-window", "3s", "--quiet-period", "4s"})
	out := t.TempDir() + "/watch.jsonl"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The namespace holds a minimal init (sh, which reaps orphans) and watch;
	// everything else is driven from outside, where forks still work.
	ns := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c",
		`echo 500 > /proc/sys/kernel/pid_max || exit 77; "$SELF" > "$OUT" 2>"$OUT.err" & wait`)
	ns.Env = append(os.Environ(), "SELF="+self, "OUT="+out, "PIDPRESSURE_AS_CLI="+string(args))
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Process.Kill(); _ = ns.Wait() })
	initPID := waitChild(t, ns.Process.Pid)
	watchPID := waitChild(t, initPID)
	waitFor(t, 20*time.Second, func() bool { b, _ := os.ReadFile(out); return bytes.Contains(b, []byte(`"kind":"condition"`)) })

	// Exhaust the namespace: bash fork loops started inside it.
	start := time.Now()
	bomb := exec.Command("nsenter", "--target", strconv.Itoa(initPID), "--pid", "--mount", "--",
		"systemd-cat", "-t", "ppwatch", "bash", "-c", `for i in $(seq 1 700); do sleep 6.321 & done; wait`)
	bomb.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := bomb.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	_ = syscall.Kill(-bomb.Process.Pid, syscall.SIGKILL) // the loop and every sleep it started
	_ = bomb.Wait()
	// The condition must clear after the failure window and quiet period.
	waitFor(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(out)
		i := bytes.LastIndex(b, []byte(`"reason":"PIDExhausted"`))
		return i >= 0 && bytes.Contains(b[i:], []byte(`"reason":"PIDHeadroomSufficient"`))
	})
	_ = syscall.Kill(watchPID, syscall.SIGTERM)

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var conds []watchRecord
	var events []watchRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r watchRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		if r.Kind == "condition" {
			conds = append(conds, r)
		} else {
			events = append(events, r)
		}
	}
	if len(conds) == 0 || conds[0].Status != "False" {
		t.Fatalf("first record must be the initial condition (False): %+v", conds)
	}
	var trueAt, falseAt time.Time
	var trueMsg string
	for _, c := range conds {
		ts, err := time.Parse(time.RFC3339Nano, c.Time)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == "True" && c.Reason == "PIDExhausted" && trueAt.IsZero() {
			trueAt, trueMsg = ts, c.Message
			if !strings.Contains(c.Message, "kernel.pid_max=500") {
				t.Errorf("PIDExhausted message %q does not name the namespace's pid_max", c.Message)
			}
		}
		if !trueAt.IsZero() && c.Status == "False" && c.Reason == "PIDHeadroomSufficient" && ts.After(trueAt) {
			falseAt = ts
		}
	}
	if trueAt.IsZero() {
		t.Fatalf("no PIDExhausted in %+v (events %+v)", conds, events)
	}
	if d := trueAt.Sub(start); d > 5*time.Second {
		t.Errorf("PIDExhausted %v after the exhaustion started, want ≤ 5 s", d)
	}
	t.Logf("PIDExhausted %v after the exhaustion started: %s", trueAt.Sub(start).Round(time.Millisecond), trueMsg)
	if falseAt.IsZero() {
		t.Errorf("the condition did not return to PIDHeadroomSufficient: %+v", conds)
	}
	if len(events) == 0 {
		t.Error("no events")
	}
}

// waitChild returns the first child of pid, waiting for it to appear.
func waitChild(t *testing.T, pid int) int {
	t.Helper()
	var child int
	waitFor(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false
		}
		child, _ = strconv.Atoi(f[0])
		return child > 0
	})
	return child
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
