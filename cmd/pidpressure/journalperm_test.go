package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// TestWatchUnreadableJournalIsNotUp runs "pidpressure watch" as user 65534
// (no groups) on a journal directory of real journal files that only root
// may read: the journal source is "not supported here" with the permission
// problem on /healthz, and pidpressure_source_up{source="journal"} is 0,
// instead of a source that reads nothing reported as up.
func TestWatchUnreadableJournalIsNotUp(t *testing.T) {
	skipLive(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	journald.Ensure(t)
	journald.Cat(t, "pptest", "pptest-journalperm")
	files, _ := filepath.Glob("/run/log/journal/*/system.journal")
	more, _ := filepath.Glob("/var/log/journal/*/system.journal")
	if files = append(files, more...); len(files) == 0 {
		t.Skip("no system.journal of journald found")
	}
	// The build directory is private to root: the binary and the journal
	// files go where another user may reach them; the files stay root's, 0600.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "pidpressure")
	journald.CopyFile(t, self, bin, 0o755)
	journalDir := filepath.Join(dir, "journal")
	if err := os.Mkdir(journalDir, 0o755); err != nil {
		t.Fatal(err)
	}
	journald.CopyFile(t, files[0], filepath.Join(journalDir, "system.journal"), 0o600)
	host, err := filepath.Abs(filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct"))
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	args, _ := json.Marshal([]string{"watch", "-o", "jsonl", "--host-root", host, "--journal-dir", journalDir,
		"--kmsg-path", "", "--no-pids-events", "--prewarm-threads", "1", "--sample-interval", "200ms", "--metrics-address", addr})
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin)
	cmd.Env = append(os.Environ(), "PIDPRESSURE_AS_CLI="+string(args))
	cmd.Dir = "/"
	var errOut syncBuffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var code int
	var health string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		code, health = get("http://" + addr + "/healthz")
		if strings.Contains(health, "journal: up") || strings.Contains(health, "journal: not supported") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(health, "journal: not supported here") || !strings.Contains(health, journalDir) || !strings.Contains(health, "permission denied") {
		t.Errorf("/healthz = %d %q; want the journal not supported here, naming %s and the permission problem\nstderr:\n%s", code, health, journalDir, errOut.String())
	}
	_, body := get("http://" + addr + "/metrics")
	for _, c := range []struct {
		name string
		want float64
	}{{"pidpressure_source_up", 0}, {"pidpressure_source_enabled", 0}} {
		if v, ok := metricValue(body, c.name, "source", "journal"); !ok || v != c.want {
			t.Errorf("%s{source=\"journal\"} = %v (found %v), want %v", c.name, v, ok, c.want)
		}
	}
	if !strings.Contains(errOut.String(), `msg="source not supported here; the others carry on" source=journal`) {
		t.Errorf("the log does not say the journal is not supported:\n%s", errOut.String())
	}
	// With no source left, watch still runs (it samples the headroom) until
	// it is told to stop.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("watch is gone: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("watch did not stop cleanly on SIGTERM: %v\n%s", err, errOut.String())
	}
}
