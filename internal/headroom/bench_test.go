package headroom

import (
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// extraThreads is how many OS threads the scaling benchmark adds.
const extraThreads = 20000

// spawnThreads starts n OS threads in this process (goroutines locked to
// their threads, parked on a channel) and returns a function that ends them.
// Goroutines that exit while locked take their thread with them.
func spawnThreads(b *testing.B, n int) func() {
	b.Helper()
	prev := debug.SetMaxThreads(n + 10000)
	stop := make(chan struct{})
	ready := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		go func() {
			runtime.LockOSThread()
			ready <- struct{}{}
			<-stop
		}()
	}
	for i := 0; i < n; i++ {
		<-ready
	}
	return func() {
		close(stop)
		// Restore the limit only once the threads are gone: lowering it below
		// the live count is fatal ("program exceeds 10000-thread limit").
		for i := 0; i < 200 && ownThreads(b) > prev/2; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if ownThreads(b) < prev/2 {
			debug.SetMaxThreads(prev)
		}
	}
}

func ownThreads(b *testing.B) int {
	b.Helper()
	ts, err := os.ReadDir("/proc/self/task")
	if err != nil {
		b.Fatal(err)
	}
	return len(ts)
}

// medianNs times f rounds×reps times and returns the median ns per call.
func medianNs(rounds, reps int, f func()) float64 {
	var per []float64
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < reps; i++ {
			f()
		}
		per = append(per, float64(time.Since(start).Nanoseconds())/float64(reps))
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
// threads, in one process, and reports the ratios (with/without). The node
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
		sample = medianNs(9, 2000, func() { _, _ = s.Node() })
		walk = medianNs(5, 5, func() { _, _ = Walk(root, 10) })
		count = medianNs(5, 5, func() { _, _ = CountTasks(root, false) })
		return sample, walk, count
	}
	s0, w0, c0 := measure()
	before := ownThreads(b)
	stop := spawnThreads(b, extraThreads)
	defer stop()
	after := ownThreads(b)
	if after-before < extraThreads-100 { // a few goroutines may take idle threads the runtime already had
		b.Fatalf("only %d threads were added", after-before)
	}
	n1, _ := s.Node()
	s1, w1, c1 := measure()
	b.ReportMetric(float64(n.Tasks), "tasks_before")
	b.ReportMetric(float64(n1.Tasks), "tasks_after")
	b.ReportMetric(s0, "sample_ns")
	b.ReportMetric(s1, "sample_20k_ns")
	b.ReportMetric(s1/s0, "sample_ratio")
	b.ReportMetric(w1/w0, "walk_ratio")
	b.ReportMetric(c1/c0, "count_tasks_ratio")
	b.ReportMetric(c1/1e6, "count_tasks_20k_ms")
}
