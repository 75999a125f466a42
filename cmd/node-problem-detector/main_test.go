package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the command: with this variable set it runs
// main with its own arguments, so the tests run the real NPD main loop,
// flag parsing and exporters without a separate build.
const asMain = "PIDPRESSURE_NPD_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), asMain+"=1", "NODE_NAME=pp-test-node")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd, &errOut
}

// TestDropInPrometheus runs the command as a DaemonSet would, with the
// pid-pressure monitor on the fake host at 97 % of pid_max (a generated
// /proc and /sys tree; this machine must not be brought near its own
// pid_max) and the Kubernetes exporter off, and reads NPD's own Prometheus
// endpoint: problem_gauge shows PIDPressureRisk/PIDHeadroomLow at 1 and the
// event reasons at 0. SIGTERM stops it cleanly.
func TestDropInPrometheus(t *testing.T) {
	conf := fakeHostConfig(t)
	port, own := freePort(t), freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, errOut := command(ctx, "--config.pid-pressure-monitor="+conf, "--enable-k8s-exporter=false",
		"--prometheus-address=127.0.0.1", "--prometheus-port="+strconv.Itoa(port), "--metrics-address=127.0.0.1:"+strconv.Itoa(own))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, body = fetch(url); gauge(body, "PIDPressureRisk", "PIDHeadroomLow") == "1" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := gauge(body, "PIDPressureRisk", "PIDHeadroomLow"); v != "1" {
		_ = cmd.Process.Kill() // its standard error is complete once it has exited
		_ = cmd.Wait()
		t.Fatalf("problem_gauge PIDPressureRisk/PIDHeadroomLow = %q, want 1\nmetrics:\n%s\nstderr:\n%s", v, body, errOut)
	}
	if !strings.Contains(body, `problem_counter{reason="ProcessCreationFailed"}`) {
		t.Errorf("event reasons are not initialised at zero:\n%s", body)
	}
	// The monitor's own listener (--metrics-address): its metrics and health.
	ownURL := "http://127.0.0.1:" + strconv.Itoa(own)
	if _, b := fetch(ownURL + "/metrics"); !strings.Contains(b, "pidpressure_condition_true 1") {
		t.Errorf("own metrics lack pidpressure_condition_true 1:\n%s", b)
	}
	if code, b := fetch(ownURL + "/healthz"); code != http.StatusOK || !strings.HasPrefix(b, "ok") {
		t.Errorf("/healthz = %d %q", code, b)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, errOut)
	}
}

// fakeHostConfig is a monitor file for the fake host at 97 % of pid_max (a
// generated /proc and /sys tree; this machine must not be brought near its
// own pid_max), sampled every 200 ms, with no log or kernel source.
func fakeHostConfig(t *testing.T) string {
	t.Helper()
	host, err := filepath.Abs(filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct"))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "pid-pressure-monitor.json")
	if err := os.WriteFile(conf, []byte(`{"sampleInterval": "200ms", "hostRoot": "`+host+`",
	"sources": {"journal": {"enabled": false}, "kmsg": {"enabled": false}, "pidsEvents": {"enabled": false}, "ebpf": {"mode": "off"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

func fetch(url string) (int, string) {
	resp, err := http.Get(url) //nolint:noctx // a test's short request
	if err != nil {
		return 0, ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// gauge returns the value of problem_gauge{type, reason} in a Prometheus
// text exposition, or "".
func gauge(body, typ, reason string) string {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "problem_gauge{") && strings.Contains(l, `type="`+typ+`"`) && strings.Contains(l, `reason="`+reason+`"`) {
			f := strings.Fields(l)
			return f[len(f)-1]
		}
	}
	return ""
}

// TestMonitorRunsWhileTheAPIServerIsAway: with the Kubernetes exporter on
// and no apiserver answering, the monitor still starts at once: its
// metrics show the condition and /healthz answers, long before NPD's
// apiserver wait (5 minutes here) would end. Found on the real node: the
// wait blocked both, and the liveness probe restarted the pod.
func TestMonitorRunsWhileTheAPIServerIsAway(t *testing.T) {
	conf := fakeHostConfig(t)
	away, own := freePort(t), freePort(t) // nothing listens on away
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, errOut := command(ctx, "--config.pid-pressure-monitor="+conf,
		"--apiserver-override=http://127.0.0.1:"+strconv.Itoa(away)+"?inClusterConfig=false", "--apiserver-wait-timeout=5m",
		"--prometheus-port=0", "--port=0", "--metrics-address=127.0.0.1:"+strconv.Itoa(own))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ownURL := "http://127.0.0.1:" + strconv.Itoa(own)
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) { // polling the endpoint
		if _, body = fetch(ownURL + "/metrics"); strings.Contains(body, "pidpressure_condition_true 1") {
			break
		}
	}
	if !strings.Contains(body, "pidpressure_condition_true 1") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the monitor did not run while the apiserver was away:\n%s\nstderr:\n%s", body, errOut)
	}
	if code, b := fetch(ownURL + "/healthz"); code != http.StatusOK || !strings.HasPrefix(b, "ok") {
		t.Errorf("/healthz = %d %q while the apiserver is away", code, b)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, errOut)
	}
	// Its standard error is complete only now.
	if !strings.Contains(errOut.String(), "Can't get node object") {
		t.Errorf("the apiserver wait did not run (or did not log):\n%s", errOut)
	}
}

// TestBadConfigFailsAtStart: a broken monitor file stops the command at
// start-up with one message naming the field.
func TestBadConfigFailsAtStart(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(conf, []byte(`{"thresholds": {"warningPercent": 150}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, errOut := command(ctx, "--config.pid-pressure-monitor="+conf, "--enable-k8s-exporter=false", "--prometheus-port=0")
	err := cmd.Run()
	if err == nil || !strings.Contains(errOut.String(), "thresholds.warningPercent") {
		t.Errorf("exit %v, stderr %q; want failure naming thresholds.warningPercent", err, errOut)
	}
}

// TestStockNPDRunsCheck runs NPD's own custom plugin monitor with
// config/pid-pressure-plugin.json, its rule pointed at a freshly built
// pidpressure and checking the generated host at 97 % of pid_max: NPD execs
// the check, reads exit 1 and sets its permanent condition, visible in
// problem_gauge.
func TestStockNPDRunsCheck(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pidpressure")
	build := exec.Command("go", "build", "-o", bin, "../pidpressure")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	host, err := filepath.Abs(filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct"))
	if err != nil {
		t.Fatal(err)
	}
	monitor := filepath.Join(dir, "monitor.json")
	if err := os.WriteFile(monitor, []byte(`{"sources": {"journal": {"enabled": false}, "kmsg": {"enabled": false}, "pidsEvents": {"enabled": false}, "ebpf": {"mode": "off"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "pid-pressure-plugin.json"))
	if err != nil {
		t.Fatal(err)
	}
	var plugin map[string]any
	if err := json.Unmarshal(b, &plugin); err != nil {
		t.Fatal(err)
	}
	plugin["pluginConfig"].(map[string]any)["invoke_interval"] = "1s"
	rule := plugin["rules"].([]any)[0].(map[string]any)
	rule["path"] = bin
	rule["args"] = []string{"check", "--state-dir", filepath.Join(dir, "state"), "--window", "300ms", "--host-root", host, "--config", monitor}
	pluginConf := filepath.Join(dir, "pid-pressure-plugin.json")
	b, _ = json.Marshal(plugin)
	if err := os.WriteFile(pluginConf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, errOut := command(ctx, "--config.custom-plugin-monitor="+pluginConf, "--enable-k8s-exporter=false",
		"--prometheus-address=127.0.0.1", "--prometheus-port="+strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, body = fetch("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"); gauge(body, "PIDPressureRisk", "PIDPressureRiskDetected") == "1" {
			return
		}
	}
	t.Fatalf("NPD's custom plugin monitor did not set PIDPressureRisk from the check:\n%s\nstderr:\n%s", body, errOut)
}
