package forkfail_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/forkfail"
)

// pidsV1 is this machine's cgroup v1 pids hierarchy.
const pidsV1 = "/sys/fs/cgroup/pids"

// open attaches the counter in the mode the kernel allows, or skips.
func open(t *testing.T) *forkfail.Counter {
	t.Helper()
	if testing.Short() {
		t.Skip("live test: loads a BPF program")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF and CAP_PERFMON)")
	}
	c, err := forkfail.Open(forkfail.Options{})
	if errors.Is(err, forkfail.ErrNotSupported) && os.Getenv("PIDPRESSURE_REQUIRE_EBPF") == "" {
		t.Skipf("not supported here (PIDPRESSURE_REQUIRE_EBPF=1 makes this a failure): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	t.Logf("attached by %s", c.Mode())
	return c
}

// groundTruth builds testdata/groundtruth.c once per test binary.
func groundTruth(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "groundtruth")
	out, err := exec.Command("gcc", "-O2", "-Wall", "-pthread", "-o", bin, "testdata/groundtruth.c").CombinedOutput()
	if err != nil {
		t.Fatalf("building the ground truth: %v\n%s", err, out)
	}
	return bin
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

// cgroup makes a v1 pids cgroup at pids.max max, removed at the end.
func cgroup(t *testing.T, max int) (dir string, ino uint64) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pidsV1, "cgroup.procs")); err != nil {
		t.Skip("no cgroup v1 pids hierarchy at " + pidsV1)
	}
	dir = filepath.Join(pidsV1, fmt.Sprintf("pidpressure-forkfail-%d-%d", os.Getpid(), time.Now().UnixNano()))
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

func TestCountsCgroupRefusals(t *testing.T) {
	c := open(t)
	bin := groundTruth(t)
	for _, class := range []forkfail.Class{forkfail.ClassProcess, forkfail.ClassThread} {
		t.Run(class.String(), func(t *testing.T) {
			dir, ino := cgroup(t, 10)
			comm := "gt-cg-" + class.String()[:3]
			mode := "fork"
			if class == forkfail.ClassThread {
				mode = "thread"
			}
			_, eagain := run(t, bin, comm, mode, "50", "--cgroup", filepath.Join(dir, "cgroup.procs"))
			sum, recs := counted(t, c, comm)
			if sum != uint64(eagain) {
				t.Fatalf("counted %d failures, the program saw %d: %+v", sum, eagain, recs)
			}
			for _, r := range recs {
				if r.Limit != forkfail.LimitCgroup || r.Refusing != ino || r.Class != class || r.Max != 10 {
					t.Errorf("record %+v: want limit cgroup, refusing %d (the cgroup), class %s, max 10", r, ino, class)
				}
			}
			t.Logf("%d of %d refusals counted, labelled %s", sum, eagain, recs[0].Limit)
		})
	}
}

func TestCountsPIDNamespaceExhaustion(t *testing.T) {
	c := open(t)
	bin := groundTruth(t)
	host, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	_, eagain := run(t, bin, "gt-pidns", "fork", "500", "--pidns", "400")
	sum, recs := counted(t, c, "gt-pidns")
	if sum != uint64(eagain) {
		t.Fatalf("counted %d failures, the program saw %d: %+v", sum, eagain, recs)
	}
	for _, r := range recs {
		if r.Limit != forkfail.LimitPIDMax || r.Max != 400 || fmt.Sprintf("pid:[%d]", r.PIDNS) == host {
			t.Errorf("record %+v: want limit pid_max, max 400, the new namespace (not %s)", r, host)
		}
	}
	t.Logf("%d of %d refusals counted, labelled %s", sum, eagain, recs[0].Limit)
}

func TestCountsRlimitNproc(t *testing.T) {
	c := open(t)
	bin := groundTruth(t)
	_, eagain := run(t, bin, "gt-nproc", "fork", "50", "--nproc", "20", "--uid", "65534")
	sum, recs := counted(t, c, "gt-nproc")
	if sum != uint64(eagain) {
		t.Fatalf("counted %d failures, the program saw %d: %+v", sum, eagain, recs)
	}
	for _, r := range recs {
		if r.Limit != forkfail.LimitNproc || r.UID != 65534 || r.Max != 20 {
			t.Errorf("record %+v: want limit nproc, uid 65534, max 20", r)
		}
	}
	t.Logf("%d of %d refusals counted, labelled %s", sum, eagain, recs[0].Limit)
}
