package forkfail_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/forkfail"
	"github.com/pidpressure/pidpressure/internal/testenv"
)

// Environment of the live tests.
const (
	// requireEnv makes a counter that does not load a failure, not a skip
	// (make test sets it as root).
	requireEnv = testenv.RequireEnv
	// vmEnv says the tests run in the node VM, whose kernel is theirs:
	// only there do they lower kernel.pid_max and kernel.threads-max.
	vmEnv = "PIDPRESSURE_NODEVM"
	// groundTruthEnv and costEnv name prebuilt programs (the VM has no
	// compiler); otherwise they are built from testdata with gcc.
	groundTruthEnv = "PIDPRESSURE_GROUNDTRUTH"
	costEnv        = "PIDPRESSURE_COST"
)

// modes returns the attach modes the kernel allows here, skipping the test
// when there is none (failing it where the run requires one).
func modes(t testing.TB) []forkfail.Mode {
	t.Helper()
	if testing.Short() {
		t.Skip("live test: loads a BPF program")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF and CAP_PERFMON)")
	}
	var ok []forkfail.Mode
	var why []string
	for _, m := range []forkfail.Mode{forkfail.ModeFexit, forkfail.ModeTracepoint} {
		c, err := forkfail.Open(forkfail.Options{Modes: []forkfail.Mode{m}})
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		_ = c.Close()
		ok = append(ok, m)
	}
	if len(ok) == 0 {
		if os.Getenv(requireEnv) != "" {
			t.Fatalf("no attach mode loads: %s", strings.Join(why, "; "))
		}
		t.Skipf("not supported here (%s=1 makes this a failure): %s", requireEnv, strings.Join(why, "; "))
	}
	for _, w := range why {
		t.Logf("not here: %s", w)
	}
	return ok
}

func attach(t *testing.T, m forkfail.Mode) *forkfail.Counter {
	t.Helper()
	c, err := forkfail.Open(forkfail.Options{Modes: []forkfail.Mode{m}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var result = regexp.MustCompile(`ok=(\d+) eagain=(\d+) other=(\d+)`)

// run runs the ground truth and returns how many creations it saw refused
// with EAGAIN.
func run(t *testing.T, bin string, args ...string) (ok, eagain int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 4 {
			t.Skipf("ground truth: %s", out)
		}
		t.Fatalf("ground truth %v: %v\n%s", args, err, out)
	}
	m := result.FindSubmatch(out)
	if m == nil {
		t.Fatalf("ground truth printed %q", out)
	}
	ok, _ = strconv.Atoi(string(m[1]))
	eagain, _ = strconv.Atoi(string(m[2]))
	if other, _ := strconv.Atoi(string(m[3])); other != 0 {
		t.Fatalf("ground truth saw %d failures other than EAGAIN: %s", other, out)
	}
	if eagain == 0 {
		t.Fatalf("the limit refused nothing: %s", out)
	}
	return ok, eagain
}

// counted drains the counter and returns the records of the process named
// comm. The ground truth has exited: every failure it saw was counted, in
// the system call that failed, before it returned.
func counted(t *testing.T, c *forkfail.Counter, comm string) (sum uint64, recs []forkfail.Record) {
	t.Helper()
	all, err := c.Drain(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.Comm == comm {
			sum += r.Count
			recs = append(recs, r)
		}
	}
	return sum, recs
}

// pidsHierarchy is where the pids controller is: the v1 hierarchy here,
// the unified one in the node VM.
func pidsHierarchy(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/pids/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/pids"
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control"); err == nil && strings.Contains(string(b), "pids") {
		return "/sys/fs/cgroup"
	}
	t.Skip("no pids controller")
	return ""
}

// cgroup makes a pids cgroup at pids.max max, removed at the end.
func cgroup(t *testing.T, max int) (dir string, ino uint64) {
	t.Helper()
	dir = filepath.Join(pidsHierarchy(t), fmt.Sprintf("pidpressure-forkfail-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The ground truth killed what it made and exited: the cgroup is empty.
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(max)), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return dir, st.Ino
}

// sysctl sets a kernel sysctl of the node VM for the test and restores it.
func sysctl(t *testing.T, name string, v uint64) {
	t.Helper()
	if os.Getenv(vmEnv) == "" {
		t.Skipf("changes kernel.%s: only in the node VM (%s=1)", name, vmEnv)
	}
	p := "/proc/sys/kernel/" + name
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strconv.FormatUint(v, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(p, old, 0o644); err != nil {
			t.Errorf("restoring %s: %v", p, err)
		}
	})
}

// tasks is the node's task count (/proc/loadavg).
func tasks(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	var a, b1, c float64
	var running, total uint64
	if _, err := fmt.Sscanf(string(b), "%f %f %f %d/%d", &a, &b1, &c, &running, &total); err != nil {
		t.Fatal(err)
	}
	return total
}

// check asserts that what the counter counted for comm equals what the
// program saw, and that every record satisfies want.
func check(t *testing.T, c *forkfail.Counter, comm string, eagain int, want func(forkfail.Record) string) {
	t.Helper()
	sum, recs := counted(t, c, comm)
	if sum != uint64(eagain) {
		t.Fatalf("counted %d failures, the program saw %d: %+v", sum, eagain, recs)
	}
	for _, r := range recs {
		if msg := want(r); msg != "" {
			t.Errorf("record %+v: %s", r, msg)
		}
	}
	t.Logf("%d of %d refusals counted, labelled %s", sum, eagain, recs[0].Limit)
}

// TestCounts checks, in every attach mode the kernel allows, that the
// counter counts exactly the creations a program saw refused, and names
// the limit that refused them: a pids cgroup (processes and threads), a
// PID namespace's own pid_max (Linux >= 6.14), the user's RLIMIT_NPROC
// and, in the node VM, the node's kernel.pid_max and kernel.threads-max.
func TestCounts(t *testing.T) {
	ms := modes(t)
	gt := testenv.CProgram(t, groundTruthEnv, "testdata/groundtruth.c", "-pthread")
	for _, m := range ms {
		t.Run(string(m), func(t *testing.T) {
			for _, class := range []forkfail.Class{forkfail.ClassProcess, forkfail.ClassThread} {
				t.Run("cgroup-"+class.String(), func(t *testing.T) {
					c := attach(t, m)
					dir, ino := cgroup(t, 10)
					comm, kind := "gt-cg-"+class.String()[:3], map[forkfail.Class]string{forkfail.ClassProcess: "fork", forkfail.ClassThread: "thread"}[class]
					_, eagain := run(t, gt, comm, kind, "50", "--cgroup", filepath.Join(dir, "cgroup.procs"))
					check(t, c, comm, eagain, func(r forkfail.Record) string {
						if r.Limit != forkfail.LimitCgroup || r.Refusing != ino || r.Class != class || r.Max != 10 {
							return fmt.Sprintf("want limit cgroup, refusing %d (the cgroup), class %s, max 10", ino, class)
						}
						return ""
					})
				})
			}
			t.Run("pid-namespace", func(t *testing.T) {
				c := attach(t, m)
				host, err := os.Readlink("/proc/self/ns/pid")
				if err != nil {
					t.Fatal(err)
				}
				_, eagain := run(t, gt, "gt-pidns", "fork", "500", "--pidns", "400")
				check(t, c, "gt-pidns", eagain, func(r forkfail.Record) string {
					if r.Limit != forkfail.LimitPIDMax || r.Max != 400 || fmt.Sprintf("pid:[%d]", r.PIDNS) == host {
						return "want limit pid_max, max 400, the new namespace (not " + host + ")"
					}
					return ""
				})
			})
			t.Run("nproc", func(t *testing.T) {
				c := attach(t, m)
				_, eagain := run(t, gt, "gt-nproc", "fork", "50", "--nproc", "20", "--uid", "65534")
				check(t, c, "gt-nproc", eagain, func(r forkfail.Record) string {
					if r.Limit != forkfail.LimitNproc || r.UID != 65534 || r.Max != 20 {
						return "want limit nproc, uid 65534, max 20"
					}
					return ""
				})
			})
			t.Run("node-pid_max", func(t *testing.T) {
				limit := tasks(t) + 400
				sysctl(t, "pid_max", limit)
				c := attach(t, m)
				if err := c.SetHostPIDMax(int64(limit)); err != nil {
					t.Fatal(err)
				}
				_, eagain := run(t, gt, "gt-pidmax", "fork", "800")
				check(t, c, "gt-pidmax", eagain, func(r forkfail.Record) string {
					if r.Limit != forkfail.LimitPIDMax || r.Max != int64(limit) {
						return fmt.Sprintf("want limit pid_max, max %d", limit)
					}
					return ""
				})
			})
			t.Run("threads-max", func(t *testing.T) {
				sysctl(t, "threads-max", tasks(t)+100)
				c := attach(t, m)
				_, eagain := run(t, gt, "gt-threads", "thread", "300")
				// The tracepoints cannot read threads-max: their label is
				// unknown, and the agent names it from the node's numbers.
				want := forkfail.LimitThreadsMax
				if m == forkfail.ModeTracepoint {
					want = forkfail.LimitUnknown
				}
				check(t, c, "gt-threads", eagain, func(r forkfail.Record) string {
					if r.Limit != want || r.Class != forkfail.ClassThread {
						return fmt.Sprintf("want limit %s, class thread", want)
					}
					return ""
				})
			})
		})
	}
}
