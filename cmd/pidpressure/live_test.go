package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/reproduce"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// Live-host tests: they read this machine's /proc and create real pids
// cgroups and PID namespaces, and are skipped under -short.

// TestMain lets the test binary act as the pidpressure command when
// PIDPRESSURE_AS_CLI holds its arguments (JSON), so that a test can run the
// real CLI inside a PID namespace without building it first.
func TestMain(m *testing.M) {
	if args := os.Getenv("PIDPRESSURE_AS_CLI"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			fmt.Fprintln(os.Stderr, "PIDPRESSURE_AS_CLI:", err)
			os.Exit(2)
		}
		// As main does: SIGTERM and SIGINT end the command cleanly.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, argv, os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	code := m.Run()
	journald.Release()
	os.Exit(code)
}

func skipLive(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("live-host test (skipped under -short)")
	}
}

func diagnoseJSON(t *testing.T, args ...string) headroom.Diagnosis {
	t.Helper()
	code, out, errOut := runCLI(t, "", append([]string{"diagnose", "-o", "json"}, args...)...)
	if code != exitOK {
		t.Fatalf("diagnose exit %d: %s", code, errOut)
	}
	var d headroom.Diagnosis
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("diagnose -o json: %v\n%s", err, out)
	}
	return d
}

func readUintFile(t *testing.T, p string) uint64 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func loadavgTasks(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	_, total, _ := strings.Cut(f[3], "/")
	n, err := strconv.ParseUint(total, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDiagnoseAgreesWithThisMachine: diagnose -o json reports this machine's
// kernel.pid_max, kernel.threads-max and /proc/loadavg task count.
func TestDiagnoseAgreesWithThisMachine(t *testing.T) {
	skipLive(t)
	// Other test packages start and end hundreds of tasks at a time: take a
	// sample during which the machine's task count held still.
	var before, after uint64
	var d headroom.Diagnosis
	for attempt := 0; attempt < 50; attempt++ {
		before = loadavgTasks(t)
		d = diagnoseJSON(t)
		after = loadavgTasks(t)
		if max(before, after)-min(before, after) <= 8 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if want := readUintFile(t, "/proc/sys/kernel/pid_max"); d.Node.PIDMax != want {
		t.Errorf("pid_max = %d, /proc/sys/kernel/pid_max = %d", d.Node.PIDMax, want)
	}
	if want := readUintFile(t, "/proc/sys/kernel/threads-max"); d.Node.ThreadsMax != want {
		t.Errorf("threads_max = %d, /proc/sys/kernel/threads-max = %d", d.Node.ThreadsMax, want)
	}
	// Other tests run alongside; the count must lie within what loadavg
	// showed just before and after, give or take their churn.
	lo, hi := min(before, after), max(before, after)
	if d.Node.Tasks+64 < lo || d.Node.Tasks > hi+64 {
		t.Errorf("tasks = %d, /proc/loadavg said %d before and %d after", d.Node.Tasks, before, after)
	}
	if d.Node.Namespace != "initial" || d.Node.TasksSource != "loadavg" {
		t.Errorf("namespace %q source %q", d.Node.Namespace, d.Node.TasksSource)
	}
	wantBinding := headroom.BindingPIDMax
	if d.Node.ThreadsMax < d.Node.PIDLimit {
		wantBinding = headroom.BindingThreadsMax
	}
	if d.Node.Binding != wantBinding {
		t.Errorf("binding = %s, want %s", d.Node.Binding, wantBinding)
	}
}

// pidsCgroupRoot returns this machine's pids hierarchy, or skips.
func pidsCgroupRoot(t *testing.T) (dir string, version int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "pids") {
		return "/sys/fs/cgroup", 2
	}
	if _, err := os.Stat("/sys/fs/cgroup/pids/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/pids", 1
	}
	t.Skip("no pids controller on this machine")
	return "", 0
}

// makeCgroup creates a pids cgroup with pids.max and removes it (killing
// what is left in it) when the test ends.
func makeCgroup(t *testing.T, hier, name string, max int) string {
	t.Helper()
	dir := filepath.Join(hier, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, dir) })
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(max)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func removeCgroup(t *testing.T, dir string) {
	t.Helper()
	if err := reproduce.RemoveCgroup(dir); err != nil {
		t.Error(err)
	}
}

// TestDiagnoseFullPidsCgroup fills a real pids cgroup to its pids.max with
// real processes until the kernel refuses a fork, and checks that diagnose,
// told about it with --cgroup, reports it at its limit with the refusals.
func TestDiagnoseFullPidsCgroup(t *testing.T) {
	skipLive(t)
	hier, version := pidsCgroupRoot(t)
	name := fmt.Sprintf("pptest-diagnose-%d", os.Getpid())
	dir := makeCgroup(t, hier, name, 6)
	// Fill it to its limit by migration (which pids.max does not limit),
	// then let a shell inside fork once: the kernel refuses and counts it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	join := func(pid int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 6; i++ {
		sleeper := exec.CommandContext(ctx, "sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
		join(sleeper.Process.Pid)
	}
	forker := exec.CommandContext(ctx, "sh", "-c", "read go; sleep 60 & wait")
	stdin, err := forker.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	forker.Stderr = &stderr
	if err := forker.Start(); err != nil {
		t.Fatal(err)
	}
	join(forker.Process.Pid)
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := forker.Wait(); err == nil {
		t.Fatalf("the shell's fork in a cgroup over its limit succeeded (stderr %q)", stderr.String())
	}
	t.Logf("the refused shell said: %q", stderr.String())
	d := diagnoseJSON(t, "--cgroup", "/"+name)
	var got *headroom.Cgroup
	for i := range d.Cgroups {
		if d.Cgroups[i].Path == "/"+name {
			got = &d.Cgroups[i]
		}
	}
	if got == nil {
		t.Fatalf("cgroup /%s not in diagnose output; errors %v", name, d.Errors)
	}
	if got.Version != version || got.Max != headroom.Finite(6) || got.Current != 6 || !got.AtLimit || got.Refused < 1 {
		t.Errorf("cgroup = %+v, want v%d at its limit of 6 with refused forks", *got, version)
	}
	if !strings.Contains(stderr.String(), "fork") && !strings.Contains(stderr.String(), "Cannot") {
		t.Logf("shell stderr: %q", stderr.String())
	}
	// The text form marks it too.
	_, text, _ := runCLI(t, "", "diagnose", "--cgroup", "/"+name)
	if !strings.Contains(text, "/"+name) || !strings.Contains(text, "YES") {
		t.Errorf("text output lacks the full cgroup:\n%s", text)
	}
}

// TestDiagnoseInPIDNamespace runs diagnose inside a new PID namespace whose
// pid_max is lowered to 500 (per-namespace since Linux 6.14): the node layer
// must report that pid_max and the namespace's own tasks.
func TestDiagnoseInPIDNamespace(t *testing.T) {
	skipLive(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal([]string{"diagnose", "-o", "json"})
	script := `echo 500 > /proc/sys/kernel/pid_max || exit 77
for i in 1 2 3 4 5; do sleep 30 & done
"$SELF"; code=$?; kill $(jobs -p) 2>/dev/null; exit $code`
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "SELF="+self, "PIDPRESSURE_AS_CLI="+string(args))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 77 {
		t.Skip("this kernel has no per-namespace pid_max (Linux < 6.14)")
	}
	if err != nil {
		t.Fatalf("unshare: %v\n%s", err, errOut.String())
	}
	var d headroom.Diagnosis
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	n := d.Node
	if n.Namespace != "nested" || n.TasksSource != "proc" || n.PIDMax != 500 {
		t.Errorf("node = %+v, want the nested namespace with pid_max 500", n)
	}
	// The namespace holds sh, 5 sleeps and this program's threads: a handful,
	// nothing like the host's count, and the walk in the same run agrees.
	if n.Tasks < 7 || n.Tasks > 100 {
		t.Errorf("namespace tasks = %d, want the few tasks of the namespace", n.Tasks)
	}
	if diff := int64(n.Tasks) - int64(d.Scan.Tasks); diff < -8 || diff > 8 {
		t.Errorf("node tasks %d and walked tasks %d disagree", n.Tasks, d.Scan.Tasks)
	}
	if n.PIDLimit != 499 && n.PIDLimit > 500 {
		t.Errorf("pid limit = %d with pid_max 500", n.PIDLimit)
	}
}
