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
