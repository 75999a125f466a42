package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// get returns the status and body of an HTTP GET ("" and 0 on error).
func get(url string) (int, string) {
	resp, err := http.Get(url) //nolint:noctx // a test's short request
	if err != nil {
		return 0, ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue finds name{…} with every given label in a Prometheus text
// exposition.
func metricValue(body, name string, labels ...string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(l, labels[i]+`="`+labels[i+1]+`"`) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// TestWatchMetricsAndHealth runs watch with --metrics-address on the
// generated host at 97 % of pid_max (the node numbers are the fixture's) and
// a kmsg path that is a directory (it opens, and every read fails): /metrics
// shows the condition, the node layer and the binding limit; /healthz is 503
// and names the kmsg source and why it is down.
func TestWatchMetricsAndHealth(t *testing.T) {
	t.Parallel()
	host := filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct")
	addr := freePort(t)
	kmsgDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errOut strings.Builder
	go func() {
		done <- run(ctx, []string{"watch", "-o", "jsonl", "--host-root", host, "--kmsg-path", kmsgDir,
			"--no-journal", "--no-pids-events", "--prewarm-threads", "1", "--sample-interval", "200ms", "--metrics-address", addr},
			strings.NewReader(""), &out, &errOut)
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("watch exit %d: %s", code, errOut.String())
		}
	}()
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, body = get("http://" + addr + "/metrics")
		if v, ok := metricValue(body, "pidpressure_node_sampled"); ok && v == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pidpressure_condition_true", nil, 1},
		{"pidpressure_condition_reason", []string{"reason", "PIDHeadroomLow"}, 1},
		{"pidpressure_condition_reason", []string{"reason", "PIDHeadroomSufficient"}, 0},
		{"pidpressure_node_binding_limit", []string{"limit", "kernel.pid_max"}, 1},
		{"pidpressure_node_binding_limit", []string{"limit", "kernel.threads-max"}, 0},
		{"pidpressure_source_up", []string{"source", "kmsg"}, 0},
		{"pidpressure_source_enabled", []string{"source", "journal"}, 0},
		{"pidpressure_events_total", []string{"reason", "PodPIDsLimitReached", "outcome", "announced"}, 0},
	} {
		if v, ok := metricValue(body, c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	tasks, _ := metricValue(body, "pidpressure_node_tasks")
	limit, _ := metricValue(body, "pidpressure_node_limit_tasks", "limit", "kernel.pid_max")
	head, _ := metricValue(body, "pidpressure_node_headroom_tasks", "limit", "kernel.pid_max")
	if tasks == 0 || limit == 0 || head != limit-tasks || tasks/limit < 0.9 {
		t.Errorf("node layer: tasks %v, limit %v, headroom %v; want the fixture's ~97 %%", tasks, limit, head)
	}
	var code int
	var health string
	for time.Now().Before(deadline) {
		if code, health = get("http://" + addr + "/healthz"); code != http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(health, "source kmsg is down") || !strings.Contains(health, kmsgDir) {
		t.Errorf("/healthz = %d %q, want 503 naming kmsg and its path", code, health)
	}
}
