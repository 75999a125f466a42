package agent

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/pidpressure/pidpressure/internal/headroom"
	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/verdict"
)

// sleepers starts n sleeping processes in a process group of their own and
// returns a function that kills the group. They stand for the processes of
// a busy node.
func sleepers(tb testing.TB, n int) func() {
	tb.Helper()
	cmd := exec.Command("bash", "-c", `for ((i=0;i<$1;i++)); do sleep 3600 & done; echo ready; read -r _`, "sleepers", strconv.Itoa(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = stdin.Close()
		_ = cmd.Wait()
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		stop()
		tb.Fatalf("sleepers: %q, %v", line, err)
	}
	return stop
}

// nobodyProcess starts a process of UID 65534 with an RLIMIT_NPROC (1000)
// below the node's task count, the origin of the lines: its user layer
// needs the tasks per UID.
func nobodyProcess(tb testing.TB) (pid int, stop func()) {
	tb.Helper()
	cmd := exec.Command("prlimit", "--nproc=1000:1000", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "3600")
	if err := cmd.Start(); err != nil {
		tb.Skipf("setpriv: %v", err)
	}
	return cmd.Process.Pid, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

type discardSink struct{}

func (discardSink) Condition(verdict.Condition) {}
func (discardSink) Event(verdict.Event)         {}

// matchedLines feeds lines matched lines from pid to a detector on this
// host, 10,000 a second on its clock, and returns the CPU time they took
// and the CPU time of the one census taken before them.
func matchedLines(tb testing.TB, pid, lines int) (perLine, census time.Duration) {
	tb.Helper()
	m, err := signature.NewDefault()
	if err != nil {
		tb.Fatal(err)
	}
	root := hostfs.New("/")
	clk := testclock.NewFakeClock(time.Now())
	d := NewDetector(DetectorConfig{Sources: Config{Root: root}, Verdict: verdict.DefaultConfig()}, m, clk, quietLog(), discardSink{})
	d.hs, _ = headroom.Hierarchies(root)
	msg := "runtime: failed to create new OS thread (have 15 already; errno=11)"
	h, ok := m.MatchString(msg)
	if !ok {
		tb.Fatal("the line does not match")
	}
	l := logline.Line{Message: msg, Origin: logline.Origin{PID: pid, UID: 65534, Comm: "worker"}}
	start := cpuTime()
	d.takeCensus(false)
	census = cpuTime() - start
	if d.census.TasksByUID[65534] == 0 {
		tb.Fatal("the census did not count the origin's UID")
	}
	start = cpuTime()
	for range lines {
		clk.Step(100 * time.Microsecond)
		l.Time = clk.Now()
		d.observe(Report{Kind: KindMatch, Time: l.Time, Line: l, Hit: h})
	}
	if !d.censusAt.Equal(clk.Now().Add(-time.Duration(lines) * 100 * time.Microsecond)) {
		tb.Fatal("a census was taken during the lines: make them fit in minCensusAge")
	}
	return (cpuTime() - start) / time.Duration(lines), census
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMatchedLineScaling measures the cost of a matched line from a
// non-root process with a finite RLIMIT_NPROC, attributed at once (user
// layer, cgroups, node) at 10,000 lines a second, on this node with 100 and
// then with 5,000 extra processes, in one run. It reports both and their
// ratio (target ≤ 1.5). The census that counts tasks per UID is a cost per
// interval (at most one per minCensusAge, whatever the line rate), not per
// line: it is taken before the lines and reported on its own.
func BenchmarkMatchedLineScaling(b *testing.B) {
	if b.N > 1 {
		b.Skip("run once (-benchtime 1x)")
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root (setpriv)")
	}
	const lines = 40000 // 4 s at 10,000 lines a second, within one census interval
	pid, stop := nobodyProcess(b)
	defer stop()
	measure := func(extra int) (perLine, census time.Duration) {
		stopSleepers := sleepers(b, extra)
		defer stopSleepers()
		for range 3 {
			l, c := matchedLines(b, pid, lines)
			if perLine == 0 || l < perLine {
				perLine = l
			}
			if census == 0 || c < census {
				census = c
			}
		}
		return perLine, census
	}
	small, smallCensus := measure(100)
	large, largeCensus := measure(5000)
	b.ReportMetric(float64(small.Nanoseconds()), "ns/line@100")
	b.ReportMetric(float64(large.Nanoseconds()), "ns/line@5000")
	ratio := float64(large) / float64(small)
	b.ReportMetric(ratio, "ratio")
	fmt.Printf("matched line: %v with 100 extra processes, %v with 5000, ratio %.2f (target <= 1.5); census %v and %v, at most one per %v\n",
		small, large, ratio, smallCensus, largeCensus, minCensusAge)
	if ratio > 1.5 {
		b.Errorf("ratio %.2f over 1.5", ratio)
	}
}
