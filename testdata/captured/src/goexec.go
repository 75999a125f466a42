// goexec is a capture fixture, not part of pidpressure: a Go program that
// starts child processes until fork fails, so that capture.sh can record
// the real "fork/exec …: resource temporarily unavailable" it prints inside
// a pids cgroup at its limit (testdata/captured). It must exec to fail that
// way. It lives under testdata, which no package of the module builds or
// links; the agent itself never forks or execs (depguard enforces that for
// the module's code).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
)

func main() {
	runtime.GOMAXPROCS(1)
	var cmds []*exec.Cmd
	for i := 0; i < 200; i++ {
		c := exec.Command("sleep", "30")
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			break
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		c.Process.Kill()
		c.Wait()
	}
}
