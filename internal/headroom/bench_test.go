package headroom

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// extraThreads is how many OS threads the scaling benchmark adds.
const extraThreads = 20000

// TestMain turns the test binary into a thread hog when PP_THREAD_HOG holds
// a count: it starts that many OS threads, prints "ready", and exits when
// its standard input closes. The threads belong to another process, as on a
// real node, so the benchmark measures the sampler, not the Go runtime of a
// process that hosts 20,000 threads.
func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv("PP_THREAD_HOG")); err == nil && n > 0 {
		debug.SetMaxThreads(n + 1000)
		ready := make(chan struct{}, n)
		for i := 0; i < n; i++ {
			go func() {
				runtime.LockOSThread()
				ready <- struct{}{}
				select {}
			}()
		}
		for i := 0; i < n; i++ {
			<-ready
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// spawnThreads starts a helper process with n OS threads and returns a
// function that ends it.
func spawnThreads(b *testing.B, n int) (pid int, stop func()) {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "PP_THREAD_HOG="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		b.Fatalf("thread hog: %q, %v", line, err)
	}
	return cmd.Process.Pid, func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}
}

func threadsOf(b *testing.B, pid int) int {
	b.Helper()
	ts, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	return len(ts)
}

// threadCPU returns the CPU time used so far by the calling OS thread, to
// the nanosecond (getrusage's RUSAGE_THREAD is tick-grained).
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// medianNs times f rounds×reps times and returns the median CPU ns per call,
// counting only the CPU time of the measuring thread: the cost of the call,
// not what else the machine does meanwhile.
func medianNs(rounds, reps int, f func()) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var per []float64
	for r := 0; r < rounds; r++ {
		start := threadCPU()
		for i := 0; i < reps; i++ {
			f()
		}
		per = append(per, float64((threadCPU()-start).Nanoseconds())/float64(reps))
	}
	sort.Float64s(per)
	return per[len(per)/2]
}

// BenchmarkNodeSample is the O(1) node sample on this machine.
func BenchmarkNodeSample(b *testing.B) {
	s := NewSampler(hostfs.New("/"))
	defer func() { _ = s.Close() }()
	if _, err := s.Node(); err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Node(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWalk is the /proc walk (users, zombies) on this machine.
func BenchmarkWalk(b *testing.B) {
	root := hostfs.New("/")
	for i := 0; i < b.N; i++ {
		if _, err := Walk(root, 10); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThreadScaling measures the node sample, the /proc walk and the
// task count at this machine's task count and again with 20,000 extra
// threads (in a helper process), and reports the ratios (with/without). The node
// sample must stay O(1): its ratio is the figure that matters.
func BenchmarkThreadScaling(b *testing.B) {
	if b.N > 1 {
		b.Skip("run once (-benchtime 1x): each iteration spawns 20,000 threads")
	}
	root := hostfs.New("/")
	s := NewSampler(root)
	defer func() { _ = s.Close() }()
	n, err := s.Node()
	if err != nil {
		b.Skip(err)
	}
	if n.Free() < extraThreads+5000 {
		b.Skipf("only %d tasks free at the node level; need %d to add %d threads safely", n.Free(), extraThreads+5000, extraThreads)
	}
	measure := func() (sample, walk, count float64) {
		sample = medianNs(9, 5000, func() { _, _ = s.Node() })
		walk = medianNs(5, 5, func() { _, _ = Walk(root, 10) })
		count = medianNs(5, 5, func() { _, _ = CountTasks(root, 4194304) })
		return sample, walk, count
	}
	// The cost of one sample varies by ±25 % from one measurement to the
	// next on a small VM whatever the thread count, so alternate five times:
	// without, with 20,000 threads, and compare the medians.
	measure() // warm-up
	const cycles = 5
	var sw, sx, ww, wx, cw, cx []float64
	var n1 Node
	for i := 0; i < cycles; i++ {
		s0, w0, c0 := measure()
		hog, stop := spawnThreads(b, extraThreads)
		if got := threadsOf(b, hog); got < extraThreads {
			stop()
			b.Fatalf("the helper has %d threads, want %d", got, extraThreads)
		}
		time.Sleep(time.Second) // let the helper and the kernel settle
		n1, _ = s.Node()
		s1, w1, c1 := measure()
		stop()
		sw, sx = append(sw, s0), append(sx, s1)
		ww, wx = append(ww, w0), append(wx, w1)
		cw, cx = append(cw, c0), append(cx, c1)
	}
	med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
	s0, s1 := med(sw), med(sx)
	w0, w1 := med(ww), med(wx)
	c0, c1 := med(cw), med(cx)
	b.ReportMetric(float64(n.Tasks), "tasks_before")
	b.ReportMetric(float64(n1.Tasks), "tasks_after")
	b.ReportMetric(s0, "sample_ns")
	b.ReportMetric(s1, "sample_20k_ns")
	b.ReportMetric(s1/s0, "sample_ratio")
	b.ReportMetric(w1/w0, "walk_ratio")
	b.ReportMetric(c1/c0, "count_tasks_ratio")
	b.ReportMetric(c1/1e6, "count_tasks_20k_ms")
}
