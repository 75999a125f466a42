package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/forkfail"
	"github.com/pidpressure/pidpressure/internal/testenv"
)

// groundTruth is the C program that counts its own refused creations
// (internal/forkfail/testdata), started with --wait 1: set up, it waits
// for a line on its standard input, and keeps what it created until that
// closes.
type groundTruth struct {
	stdin io.WriteCloser
	out   *bufio.Scanner
	init  int // its namespace's init, as this host sees it
}

func startGroundTruth(t *testing.T, args ...string) *groundTruth {
	t.Helper()
	bin := testenv.CProgram(t, "PIDPRESSURE_GROUNDTRUTH", "../../internal/forkfail/testdata/groundtruth.c", "-pthread")
	cmd := exec.Command(bin, append(args, "--wait", "1")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // it ends, and its namespace with it
		_ = cmd.Wait()
	})
	g := &groundTruth{stdin: stdin, out: bufio.NewScanner(stdout)}
	if _, err := fmt.Sscanf(g.line(t), "init %d", &g.init); err != nil {
		t.Fatalf("ground truth: %v", err)
	}
	if line := g.line(t); line != "ready" {
		t.Fatalf("ground truth said %q instead of ready", line)
	}
	return g
}

func (g *groundTruth) line(t *testing.T) string {
	t.Helper()
	if !g.out.Scan() {
		t.Fatalf("ground truth ended: %v", g.out.Err())
	}
	return g.out.Text()
}

// requireEBPF skips a test where the counter cannot load, unless the run
// requires it (PIDPRESSURE_REQUIRE_SUPPORTED, set by make test as root).
func requireEBPF(t *testing.T) {
	t.Helper()
	if !ebpfSupported(t) {
		t.Skip("the eBPF counter is not supported here")
	}
}

// ebpfSupported reports whether the counter loads here; where the run
// requires it (testenv.RequireEnv), not loading fails the test.
func ebpfSupported(t *testing.T) bool {
	t.Helper()
	c, err := forkfail.Open(forkfail.Options{})
	if err == nil {
		_ = c.Close()
	}
	return testenv.Supported(t, err)
}

// TestWatchCountedExhaustion runs "watch --ebpf=on" with no log source,
// inside a PID namespace whose own pid_max is 400, sampling the node only
// every five minutes. A burst of forks fills the namespace between two
// samples: the kernel's count alone must turn the condition True
// PIDExhausted, and its message must say exactly how many creations the
// kernel refused — the number the program that failed counted itself.
func TestWatchCountedExhaustion(t *testing.T) {
	skipLive(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter not installed")
	}
	requireEBPF(t)
	g := startGroundTruth(t, "gt-burst", "fork", "600", "--pidns", "400")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	args, _ := json.Marshal([]string{"watch", "-o", "jsonl", "--no-journal", "--kmsg-path", "", "--no-pids-events", "--ebpf", "on",
		"--sample-interval", "5m", "--prewarm-threads", "8", "--metrics-address", addr})
	dir := t.TempDir()
	out, errOut := filepath.Join(dir, "watch.jsonl"), filepath.Join(dir, "watch.err")
	stdout, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(errOut)
	if err != nil {
		t.Fatal(err)
	}
	// watch runs in the namespace, with its /proc: the node it watches.
	w := exec.Command("nsenter", "--target", strconv.Itoa(g.init), "--pid", "--mount", "--", self)
	w.Env = append(os.Environ(), "PIDPRESSURE_AS_CLI="+string(args))
	w.Stdout, w.Stderr = stdout, stderr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Process.Signal(syscall.SIGTERM); _ = w.Wait() })
	read := func(p string) []byte { b, _ := os.ReadFile(p); return b }
	waitFor(t, 20*time.Second, func() bool {
		return bytes.Contains(read(out), []byte(`"kind":"condition"`)) && bytes.Contains(read(errOut), []byte("source=ebpf mode="))
	})

	if _, err := io.WriteString(g.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	var ok, eagain int
	if _, err := fmt.Sscanf(g.line(t), "ok=%d eagain=%d", &ok, &eagain); err != nil || eagain == 0 {
		t.Fatalf("ground truth: %v, %d refused", err, eagain)
	}
	var got watchRecord
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("watch printed:\n%s\nand logged:\n%s", read(out), read(errOut))
		}
	})
	waitFor(t, 15*time.Second, func() bool {
		for line := range bytes.Lines(read(out)) {
			var r watchRecord
			if json.Unmarshal(line, &r) == nil && r.Kind == "condition" && r.Status == "True" {
				got = r
				return true
			}
		}
		return false
	})
	for _, want := range []string{"gt-burst (pid 1)", "the kernel counted", "kernel.pid_max=400", "top consumers: gt-burst ("} {
		if got.Reason != "PIDExhausted" || !strings.Contains(got.Message, want) {
			t.Errorf("condition %s %s: %s; want PIDExhausted naming %q", got.Status, got.Reason, got.Message, want)
		}
	}
	// Every refusal is counted, exactly: the metric reaches the program's
	// own count and stays there.
	var n float64
	waitFor(t, 10*time.Second, func() bool {
		_, body := get("http://" + addr + "/metrics")
		n, _ = metricValue(body, "pidpressure_kernel_refused_creations_total", "limit", "pid_max", "subject", "node", "class", "process")
		return n >= float64(eagain)
	})
	if n != float64(eagain) {
		t.Errorf("pidpressure_kernel_refused_creations_total = %v, the program counted %d refusals", n, eagain)
	}
	t.Logf("%d creations refused, %d made; %s: %s", eagain, ok, got.Reason, got.Message)
}
