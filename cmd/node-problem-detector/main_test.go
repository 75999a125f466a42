package main

import (
	"bytes"
	"context"
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
	host, err := filepath.Abs(filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct"))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "pid-pressure-monitor.json")
	if err := os.WriteFile(conf, []byte(`{"sampleInterval": "200ms", "hostRoot": "`+host+`",
	"sources": {"journal": {"enabled": false}, "kmsg": {"enabled": false}, "pidsEvents": {"enabled": false}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, errOut := command(ctx, "--config.pid-pressure-monitor="+conf, "--enable-k8s-exporter=false",
		"--prometheus-address=127.0.0.1", "--prometheus-port="+strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			body = string(b)
			if gauge(body, "PIDPressureRisk", "PIDHeadroomLow") == "1" {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := gauge(body, "PIDPressureRisk", "PIDHeadroomLow"); v != "1" {
		t.Fatalf("problem_gauge PIDPressureRisk/PIDHeadroomLow = %q, want 1\nmetrics:\n%s\nstderr:\n%s", v, body, errOut)
	}
	if !strings.Contains(body, `problem_counter{reason="ProcessCreationFailed"}`) {
		t.Errorf("event reasons are not initialised at zero:\n%s", body)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, errOut)
	}
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
