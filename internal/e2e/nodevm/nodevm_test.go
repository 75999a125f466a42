package nodevm_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/e2e/nodevm"
)

// TestNodeVMFacts boots the node VM once and checks, inside a real systemd
// node on the kernel that Debian trixie ships (6.12), the kernel and
// systemd behaviour that the agent's readers and signatures rely on: the
// pids controller's counters and their hierarchy, the kernel's line for a
// refused fork, and pid_max exhaustion as bash reports it.
func TestNodeVMFacts(t *testing.T) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	image := bootable(ctx, t)

	files := map[string]string{}
	for _, f := range []string{"forkloop.pl", "pidmax.pl"} {
		files[f] = readTestdata(t, f)
	}
	res, err := nodevm.Run(ctx, nodevm.Options{
		ImageDir: image,
		Script:   readTestdata(t, "run.sh"),
		Files:    files,
		Timeout:  4 * time.Minute,
	})
	if err != nil {
		t.Fatalf("running the facts script in the node VM: %v", err)
	}
	t.Logf("boot to the first command %.1f s (guest uptime %.1f s), power-off at %.1f s", res.FirstCommand.Seconds(), res.GuestUptime.Seconds(), res.Elapsed.Seconds())
	t.Logf("guest output:\n%s", res.Output)
	if res.ExitCode != 0 {
		t.Fatalf("facts script exited with %d", res.ExitCode)
	}
	facts := parseFacts(res.Output)

	t.Run("systemd and cgroup v2", func(t *testing.T) {
		want(t, facts, "kernel", hasPrefix("6.12."))
		want(t, facts, "pid1", equals("systemd"))
		want(t, facts, "cgroup_fs", equals("cgroup2"))
		want(t, facts, "controllers", hasWord("pids"))
		want(t, facts, "system_slice_controllers", hasWord("pids"))
	})

	t.Run("unit at TasksMax=20", func(t *testing.T) {
		want(t, facts, "probe_rc", equals("0"))
		want(t, facts, "unit_cgroup", equals("/system.slice/pidprobe.service"))
		want(t, facts, "unit_pids_max", equals("20"))
		// perl itself is the unit's first task; every fork past the 20th
		// task was refused with EAGAIN.
		want(t, facts, "unit_pids_current", equals("20"))
		want(t, facts, "unit_forked", equals("19"))
		want(t, facts, "unit_refused", equals("81"))
		want(t, facts, "unit_eagain", equals("81"))
		// The unit's own counters: each refusal counted once, in both
		// the hierarchical and the local file.
		want(t, facts, "unit_pids_events", equals("max 81"))
		want(t, facts, "unit_pids_events_local", equals("max 81"))
	})

	t.Run("system.slice counts its child's refusals", func(t *testing.T) {
		before, after := number(t, facts, "slice_events_before"), number(t, facts, "slice_events_after")
		if got := after - before; got != 81 {
			t.Errorf("system.slice pids.events max went %d -> %d (+%d), want +81 (hierarchical counters)", before, after, got)
		}
		lb, la := number(t, facts, "slice_events_local_before"), number(t, facts, "slice_events_local_after")
		if la != 0 || lb != 0 {
			t.Errorf("system.slice pids.events.local max went %d -> %d, want 0: its own limit was never reached", lb, la)
		}
	})

	t.Run("kernel line names the unit", func(t *testing.T) {
		want(t, facts, "kmsg", equals("cgroup: fork rejected by pids controller in /system.slice/pidprobe.service"))
	})

	t.Run("pid_max lowered in the guest", func(t *testing.T) {
		want(t, facts, "pidmax_rc", equals("0"))
		want(t, facts, "pid_max_low", equals("500"))
		want(t, facts, "bash_stderr", contains("fork: retry: Resource temporarily unavailable"))
		// Perl forks until three refusals; a PID freed meanwhile goes to a
		// child of its that holds it, so the refusals must come.
		want(t, facts, "perl_refused", equals("3"))
		want(t, facts, "perl_eagain", equals("3"))
		want(t, facts, "perl_error", equals("Resource temporarily unavailable"))
		if n := number(t, facts, "loop_processes"); n < 2 || n >= 500 {
			t.Errorf("loop_processes = %d, want the bash loop and its sleeps, fewer than pid_max", n)
		}
		// A refusal at pid_max is no cgroup's doing.
		want(t, facts, "self_events_after", equals(first(facts, "self_events_before")))
		want(t, facts, "pid_max_restored", equals(first(facts, "pid_max_orig")))
	})
	t.Logf("whole test %.1f s", time.Since(begin).Seconds())
}

// TestRunTimeout stops a VM that cannot finish in time: Run returns the
// deadline error, QEMU is gone (killed by its PID) and the share removed.
func TestRunTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM: skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it builds the node VM image with mmdebstrap (make node-image)")
	}
	if _, err := exec.LookPath(nodevm.QEMU); err != nil {
		t.Skipf("%s is not installed (make nodevm-tools installs it with apt): %v", nodevm.QEMU, err)
	}
	image, err := nodevm.Image(context.Background(), testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	// 3 s is not enough for the guest to boot, let alone run the script.
	_, err = nodevm.Run(context.Background(), nodevm.Options{
		ImageDir: image,
		Script:   "#!/bin/bash\nsleep infinity\n",
		Timeout:  3 * time.Second,
		TempDir:  parent,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run() error = %v, want context.DeadlineExceeded", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("the share is still there: %v", left)
	}
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), parent) {
			t.Errorf("%s still runs: %q", filepath.Dir(p), strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

// bootable returns the node VM image for a test that boots it, built if
// need be (make node-image), and skips the test, saying why, where no VM
// can boot: under -short, not as root, without QEMU.
func bootable(ctx context.Context, t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM: skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it builds the node VM image with mmdebstrap (make node-image)")
	}
	if _, err := exec.LookPath(nodevm.QEMU); err != nil {
		t.Skipf("%s is not installed (make nodevm-tools installs it with apt): %v", nodevm.QEMU, err)
	}
	begin := time.Now()
	image, err := nodevm.Image(ctx, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s ready in %.1f s", image, time.Since(begin).Seconds())
	return image
}

// testLog sends the image build's output to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "facts", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parseFacts reads key=value lines; a key may repeat.
func parseFacts(out string) map[string][]string {
	facts := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(l, "\r"), "=")
		if ok && k != "" && !strings.ContainsAny(k, " \t") {
			facts[k] = append(facts[k], v)
		}
	}
	return facts
}

func first(facts map[string][]string, key string) string {
	if v := facts[key]; len(v) > 0 {
		return v[0]
	}
	return "<missing>"
}

func number(t *testing.T, facts map[string][]string, key string) int {
	t.Helper()
	n, err := strconv.Atoi(first(facts, key))
	if err != nil {
		t.Errorf("%s: %v", key, err)
	}
	return n
}

// A check on a fact, described for the failure message.
type check struct {
	desc string
	ok   func(string) bool
}

func equals(s string) check {
	return check{"== " + strconv.Quote(s), func(v string) bool { return v == s }}
}

func hasPrefix(s string) check {
	return check{"starts with " + strconv.Quote(s), func(v string) bool { return strings.HasPrefix(v, s) }}
}

func contains(s string) check {
	return check{"contains " + strconv.Quote(s), func(v string) bool { return strings.Contains(v, s) }}
}

func hasWord(s string) check {
	return check{"lists " + strconv.Quote(s), func(v string) bool {
		for _, w := range strings.Fields(v) {
			if w == s {
				return true
			}
		}
		return false
	}}
}

// want checks that key appears exactly once and passes c.
func want(t *testing.T, facts map[string][]string, key string, c check) {
	t.Helper()
	v := facts[key]
	switch {
	case len(v) != 1:
		t.Errorf("%s: want one value that %s, got %q", key, c.desc, v)
	case !c.ok(v[0]):
		t.Errorf("%s = %q, want %s", key, v[0], c.desc)
	}
}
