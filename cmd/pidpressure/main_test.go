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

	"github.com/pidpressure/pidpressure/internal/state"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestReplayStdin(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "ok\nbash: fork: retry: Resource temporarily unavailable\n", "replay", "--all", "-o", "jsonl", "-")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var objs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		objs = append(objs, m)
	}
	if len(objs) != 2 || objs[0]["line"] != 1.0 || objs[0]["match"] != false ||
		objs[1]["signature"] != "ShellForkRetry" || objs[1]["family"] != "shell" || objs[1]["class"] != "process" {
		t.Errorf("output %v", objs)
	}
	if !strings.Contains(errOut, "2 records, 1 matches") {
		t.Errorf("summary %q", errOut)
	}
}

func TestReplayFileFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format, file string
		wantMatches  string
	}{
		{"journal-json", "journal/capture-failures.json", "25 matches"},
		{"journal-export", "journal/capture-failures.export", "25 matches"},
		{"kmsg", "kmsg/pids-fork-rejected.txt", "3 matches"},
		{"lines", "captured/javathreads.txt", "3 matches"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "", "replay", "--format", tt.format, filepath.Join("..", "..", "testdata", tt.file))
			if code != exitOK || !strings.Contains(errOut, tt.wantMatches) || !strings.HasPrefix(out, "RECORD") {
				t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
			}
		})
	}
}

func TestReplayErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "secret.log")
	if err := os.WriteFile(unreadable, []byte("x\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"missing file", []string{"replay", filepath.Join(dir, "nope.log")}, exitError, "no such file or directory"},
		{"directory", []string{"replay", dir}, exitError, "is a directory"},
		{"unknown format", []string{"replay", "--format", "syslog", "-"}, exitUsage, `unknown format "syslog"`},
		{"unknown output", []string{"replay", "-o", "yaml", "-"}, exitUsage, `unknown output "yaml"`},
		{"unknown flag", []string{"replay", "--colour", "-"}, exitUsage, "unknown flag"},
		{"no file", []string{"replay"}, exitUsage, "accepts 1 arg"},
		{"bad max", []string{"replay", "--max-record-bytes", "0", "-"}, exitUsage, "must be positive"},
	}
	if os.Geteuid() != 0 { // root reads mode-000 files
		tests = append(tests, struct {
			name     string
			args     []string
			wantCode int
			wantErr  string
		}{"no permission", []string{"replay", unreadable}, exitError, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runCLI(t, "", tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.wantCode, errOut, tt.wantErr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "", "version")
	if code != exitOK || !strings.HasPrefix(out, "pidpressure ") {
		t.Errorf("exit %d, %q", code, out)
	}
}

func TestWatchConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"thresholds":{"warningPercent":150},"bogus":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	invalid := filepath.Join(dir, "invalid.json")
	if err := os.WriteFile(invalid, []byte(`{"thresholds":{"warningPercent":150,"recoveryPercent":0}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ file, want string }{
		// The unknown field does not hide the other problems.
		{bad, "pidpressure: " + bad + ": bogus: unknown field\nthresholds.warningPercent: must be in (0,100], is 150\n"},
		{invalid, "pidpressure: " + invalid + ": thresholds.warningPercent: must be in (0,100], is 150\nthresholds.recoveryPercent: must be in (0, warningPercent], is 0\n"},
		{filepath.Join(dir, "missing.json"), "pidpressure: open " + filepath.Join(dir, "missing.json") + ": no such file or directory\n"},
	} {
		code, _, errOut := runCLI(t, "", "watch", "--config", tt.file)
		if code != exitError || errOut != tt.want {
			t.Errorf("watch --config %s: exit %d, stderr:\n%s\nwant:\n%s", filepath.Base(tt.file), code, errOut, tt.want)
		}
	}
}

// TestFlagsAreValidatedWithTheConfig: a value given as a flag goes through
// the same validation as the file's, in watch, tail and check; each of these
// used to be accepted (or to crash the command).
func TestFlagsAreValidatedWithTheConfig(t *testing.T) {
	t.Parallel()
	host := filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct")
	quiet := []string{"--host-root", host, "--kmsg-path", "", "--no-journal", "--no-pids-events"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--event-interval", "0s"}, "events.interval: must be in [1s, 24h0m0s], is 0s"},
		{[]string{"--warning-percent", "0"}, "thresholds.warningPercent: must be in (0,100], is 0"},
		{[]string{"--recovery-percent", "95"}, "thresholds.recoveryPercent: must be in (0, warningPercent], is 95"},
		{[]string{"--quiet-period", "-1s"}, "thresholds.quietPeriod: must be positive and at most 24h0m0s, is -1s"},
		{[]string{"--failure-window", "-1m"}, "thresholds.failureWindow: must be positive and at most 24h0m0s, is -1m0s"},
		{[]string{"--horizon", "-1h"}, "thresholds.horizon: must be positive and at most 24h0m0s, is -1h0m0s"},
		{[]string{"--sample-interval", "1h"}, "sampleInterval: must be in [100ms, 5m0s], is 1h0m0s"},
		{[]string{"--prewarm-threads", "-1"}, "prewarmThreads: must be in [0, 1024], is -1"},
		{[]string{"--prewarm-threads", "100000000"}, "prewarmThreads: must be in [0, 1024], is 100000000"},
		{[]string{"--metrics-address", "20258"}, `metricsAddress: must be host:port`},
		{[]string{"--cgroup", "kubepods.slice"}, `sources.pidsEvents.cgroups[0]: must start with /, is "kubepods.slice"`},
		{[]string{"--host-root", ""}, `hostRoot: must be an absolute path, is ""`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "="), func(t *testing.T) {
			t.Parallel()
			// The timeout ends a command that wrongly started.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			code := run(ctx, append(append([]string{"watch"}, quiet...), tt.args...), strings.NewReader(""), &out, &errOut)
			if code != exitError || !strings.Contains(errOut.String(), tt.want) || out.Len() != 0 {
				t.Errorf("watch %v: exit %d, stdout %q, stderr %q; want exit 1 and %q", tt.args, code, out.String(), errOut.String(), tt.want)
			}
		})
	}
	for _, args := range [][]string{
		{"tail", "--prewarm-threads", "-1"},
		{"tail", "--cgroup", "relative"},
		{"check", "--prewarm-threads", "100000000"},
		{"check", "--host-root", ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var out, errOut bytes.Buffer
		code := run(ctx, args, strings.NewReader(""), &out, &errOut)
		cancel()
		if code == exitOK || !strings.Contains(out.String()+errOut.String(), "must ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want a validation error", args, code, out.String(), errOut.String())
		}
	}
}

// TestStateDir: watch creates a missing state directory (0700) and refuses
// at start one that cannot be created or written.
func TestStateDir(t *testing.T) {
	t.Parallel()
	host := filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct")
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	watch := func(stateDir string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"watch", "-o", "jsonl", "--host-root", host, "--kmsg-path", "", "--no-journal", "--no-pids-events",
			"--prewarm-threads", "0", "--state-dir", stateDir}, strings.NewReader(""), &out, &errOut)
		return code, errOut.String()
	}
	created := filepath.Join(dir, "a", "b")
	if code, errOut := watch(created); code != exitOK {
		t.Fatalf("watch --state-dir %s: exit %d: %s", created, code, errOut)
	}
	if fi, err := os.Stat(created); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
		t.Errorf("state directory: %v, %v; want a directory with mode 0700", fi, err)
	}
	if _, err := os.Stat(filepath.Join(created, state.FileName)); err != nil {
		t.Errorf("no state saved: %v", err)
	}
	for _, tt := range []struct{ dir, want string }{
		{filepath.Join(file, "state"), "state directory: mkdir " + file + ": not a directory"},
		// /proc/1 exists and no one, root included, can create a file in it.
		{"/proc/1", "state directory /proc/1 is not writable"},
	} {
		code, errOut := watch(tt.dir)
		if code != exitError || !strings.Contains(errOut, tt.want) {
			t.Errorf("watch --state-dir %s: exit %d, stderr %q; want exit 1 and %q", tt.dir, code, errOut, tt.want)
		}
	}
}

// TestWatchStateSurvivesRestart runs watch twice on the fake host at 97 % of
// pid_max (sources off) with a state directory: the second run starts with
// the same condition and transition time, and does not announce again the
// events the first announced.
func TestWatchStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	host := filepath.Join("..", "..", "testdata", "hosts", "pidmax-97pct")
	stateDir := t.TempDir()
	runFor := func(d time.Duration) []map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"watch", "-o", "jsonl", "--host-root", host, "--kmsg-path", "", "--no-journal", "--no-pids-events",
			"--state-dir", stateDir, "--prewarm-threads", "1", "--sample-interval", "200ms"}, strings.NewReader(""), &out, &errOut)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		var recs []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			recs = append(recs, m)
		}
		return recs
	}
	first := runFor(1500 * time.Millisecond)
	if first[0]["kind"] != "condition" || first[0]["status"] != "True" || first[0]["reason"] != "PIDHeadroomLow" {
		t.Fatalf("first run starts with %v", first[0])
	}
	announced := 0
	for _, r := range first {
		if r["kind"] == "event" {
			announced++
		}
	}
	if announced == 0 {
		t.Fatal("the first run announced no event (the audit's PIDMaxLow at least)")
	}
	time.Sleep(1100 * time.Millisecond) // the transition time has a resolution of one second
	second := runFor(1500 * time.Millisecond)
	if second[0]["status"] != "True" || second[0]["lastTransitionTime"] != first[0]["lastTransitionTime"] {
		t.Errorf("after restart: %v; first run: %v", second[0], first[0])
	}
	for _, r := range second[1:] {
		if r["kind"] == "event" {
			t.Errorf("re-announced after restart: %v", r)
		}
	}
}

// TestVersionStamped: a binary built with -ldflags -X main.version reports
// that version, and "make build" stamps both commands with git describe.
func TestVersionStamped(t *testing.T) {
	skipLive(t)
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "pidpressure")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || string(out) != "pidpressure v9.8.7-test\n" {
		t.Errorf("version of a stamped build: %q, %v", out, err)
	}

	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	want, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		t.Skipf("no git checkout: %v", err)
	}
	mk := exec.Command("make", "-s", "build", "BIN="+dir)
	mk.Dir = filepath.Join("..", "..")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	v := strings.TrimSpace(string(want))
	if out, err := exec.Command(bin, "version").Output(); err != nil || string(out) != "pidpressure "+v+"\n" {
		t.Errorf("pidpressure version after make build: %q, %v; want %q", out, err, v)
	}
	if out, err := exec.Command(filepath.Join(dir, "node-problem-detector"), "--version").Output(); err != nil || strings.TrimSpace(string(out)) != v {
		t.Errorf("node-problem-detector --version after make build: %q, %v; want %q", out, err, v)
	}
}
