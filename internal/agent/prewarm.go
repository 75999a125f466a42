package agent

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// DefaultThreads is how many OS threads PrewarmThreads creates. Measured
// here: a Go program in a full pids cgroup crashed in newosproc with 4
// pre-created threads and kept working with 16 (testdata/captured/go.txt is
// what the crash looks like).
const DefaultThreads = 16

// PrewarmThreads makes the Go runtime create n OS threads now, while the
// node can still create them, and keep them idle for later: each goroutine
// locks itself to a thread, all wait until n threads exist, then unlock and
// return. A thread whose goroutine unlocks before returning goes back to the
// runtime's pool of idle threads instead of exiting. It also caps the
// runtime at max threads so that a bug cannot make the agent a consumer of
// the very resource it watches (0 leaves the Go default).
func PrewarmThreads(n, max int) {
	var ready, release sync.WaitGroup
	ready.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			ready.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	ready.Wait()
	release.Done()
	done.Wait()
	if max > 0 {
		debug.SetMaxThreads(max)
	}
}
