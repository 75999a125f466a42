package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

func main() {
	n := 0
	for {
		n++
		go func() {
			runtime.LockOSThread()
			time.Sleep(time.Hour)
		}()
		if n%50 == 0 {
			fmt.Fprintln(os.Stderr, "started", n)
		}
		time.Sleep(time.Millisecond)
	}
}
