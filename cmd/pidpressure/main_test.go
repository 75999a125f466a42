package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		{bad, `unknown field "bogus"`},
		{invalid, "thresholds.warningPercent: must be in (0,100], is 150"},
		{invalid, "thresholds.recoveryPercent"},
		{filepath.Join(dir, "missing.json"), "no such file or directory"},
	} {
		code, _, errOut := runCLI(t, "", "watch", "--config", tt.file)
		if code != exitError || !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("watch --config %s: exit %d, stderr %q; want one message containing %q", filepath.Base(tt.file), code, errOut, tt.want)
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
