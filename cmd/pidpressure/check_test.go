package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cpmtypes "k8s.io/node-problem-detector/pkg/custompluginmonitor/types"

	"github.com/pidpressure/pidpressure/internal/state"
)

// runCheck runs "pidpressure check" in-process and returns the exit code
// and the stdout line.
func runCheck(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"check"}, args...), strings.NewReader(""), &out, &errOut)
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("check printed %q, want exactly one line (stderr %q)", out.String(), errOut.String())
	}
	return code, strings.TrimSpace(out.String())
}

func sourcesOffConfig(t *testing.T, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "monitor.json")
	mustWrite(t, p, `{"sources": {"journal": {"enabled": false}, "kmsg": {"enabled": false}, "pidsEvents": {"enabled": false}, "ebpf": {"mode": "off"}}`+extra+`}`)
	return p
}

// TestCheckProtocol: NPD's custom plugin exit codes and one line, on this
// machine (far from its limits: 0), on the generated host at 97 % of pid_max
// (1), and with a broken configuration (2).
func TestCheckProtocol(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	code, line := runCheck(t, "--state-dir", stateDir, "--window", "300ms", "--config", sourcesOffConfig(t, ""))
	if code != checkOK || !strings.HasPrefix(line, "PIDHeadroomSufficient: ") {
		t.Errorf("this node: exit %d, %q; want 0 and PIDHeadroomSufficient", code, line)
	}
	if _, err := os.Stat(filepath.Join(stateDir, state.FileName)); err != nil {
		t.Errorf("no state kept between checks: %v", err)
	}
	host := filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct")
	code, line = runCheck(t, "--state-dir", "", "--window", "300ms", "--host-root", host, "--config", sourcesOffConfig(t, ""))
	if code != checkProblem || !strings.HasPrefix(line, "PIDHeadroomLow: ") || !strings.Contains(line, "pid_max") {
		t.Errorf("97 %% host: exit %d, %q; want 1 and PIDHeadroomLow naming pid_max", code, line)
	}
	code, line = runCheck(t, "--state-dir", "", "--config", sourcesOffConfig(t, `, "thresholds": {"warningPercent": 150}`))
	if code != checkUnknown || !strings.HasPrefix(line, "PIDPressureUnknown: ") || !strings.Contains(line, "thresholds.warningPercent") {
		t.Errorf("bad config: exit %d, %q; want 2 naming the field", code, line)
	}
	code, line = runCheck(t, "--state-dir", "", "--host-root", t.TempDir(), "--config", sourcesOffConfig(t, ""))
	if code != checkUnknown || !strings.Contains(line, "pid_max") {
		t.Errorf("no /proc: exit %d, %q; want 2 naming what could not be read", code, line)
	}
	for _, w := range []string{"0s", "-1s", "2h"} {
		code, line = runCheck(t, "--state-dir", "", "--window", w, "--config", sourcesOffConfig(t, ""))
		if code != checkUnknown || !strings.Contains(line, "--window must be in") {
			t.Errorf("--window %s: exit %d, %q; want 2 naming the bounds", w, code, line)
		}
	}
}

// TestCheckSeesWhatHappenedBetweenChecks: a first check records the
// pids.events counters; a real program then has forks refused at the
// pids.max of a cgroup standing in for system.slice/kubelet.service; the
// next check, from the saved counters, reports PIDExhausted (exit 1), and
// the state keeps the condition for the check after that.
func TestCheckSeesWhatHappenedBetweenChecks(t *testing.T) {
	skipLive(t)
	pids := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(pids, "cgroup.procs")); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and the cgroup v1 pids controller")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	if real, err := exec.Command(py, "-c", "import sys; print(sys.executable)").Output(); err == nil {
		py = strings.TrimSpace(string(real))
	}
	unit := filepath.Join(pids, "system.slice", "kubelet.service")
	if _, err := os.Stat(unit); err == nil {
		t.Skip("this machine already has a kubelet.service pids cgroup")
	}
	if err := os.MkdirAll(unit, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, unit); removeCgroup(t, filepath.Dir(unit)) })
	mustWrite(t, filepath.Join(unit, "pids.max"), "1")

	state := t.TempDir()
	conf := filepath.Join(t.TempDir(), "monitor.json")
	mustWrite(t, conf, `{"sources": {"journal": {"enabled": false}, "kmsg": {"enabled": false}}, "thresholds": {"quietPeriod": "1h"}}`)
	args := []string{"--state-dir", state, "--window", "1s", "--config", conf}
	if code, line := runCheck(t, args...); code != checkOK {
		t.Fatalf("first check: exit %d, %q", code, line)
	}

	if refused := refuseForks(t, py, unit, 100, false); refused != 100 {
		t.Fatalf("the program saw %d refused forks, want 100", refused)
	}

	code, line := runCheck(t, args...)
	if code != checkProblem || !strings.HasPrefix(line, "PIDExhausted: ") || !strings.Contains(line, "kubelet.service") {
		t.Fatalf("after 100 refused forks in kubelet.service: exit %d, %q; want 1, PIDExhausted naming the unit", code, line)
	}
	time.Sleep(10 * time.Millisecond)
	// Nothing new since, but the quiet period (1h) has not passed: still True.
	if code, line := runCheck(t, args...); code != checkProblem {
		t.Errorf("the check after: exit %d, %q; want the condition kept (1)", code, line)
	}
}

// TestPluginConfigIsValidForNPD decodes config/pid-pressure-plugin.json with
// NPD's own custom plugin types and validates it (with the rule's path
// pointed at this test's binary, as an installed pidpressure would be).
func TestPluginConfigIsValidForNPD(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "pid-pressure-plugin.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c cpmtypes.CustomPluginConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyConfiguration(); err != nil {
		t.Fatal(err)
	}
	if len(c.Rules) != 1 || c.Rules[0].Condition != "PIDPressureRisk" || c.Rules[0].Args[0] != "check" {
		t.Fatalf("rules %+v", c.Rules)
	}
	if c.DefaultConditions[0].Reason != "PIDHeadroomSufficient" {
		t.Errorf("default condition %+v", c.DefaultConditions[0])
	}
	c.Rules[0].Path = os.Args[0]
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	// The check answers within the rule's timeout with its window.
	window, err := time.ParseDuration(c.Rules[0].Args[len(c.Rules[0].Args)-1])
	if err != nil || window >= *c.Rules[0].Timeout/2 {
		t.Errorf("window %v (%v) leaves too little of the rule's timeout %v", window, err, *c.Rules[0].Timeout)
	}
}
