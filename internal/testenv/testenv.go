// Package testenv holds what the tests of several packages share about the
// machine they run on. Only tests import it.
package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// RequireEnv is the variable that, set (make test sets it as root), turns a skip for something
// this host does not support into a failure: on the machines the project is
// tested on, everything is supported, and a skip would hide a regression.
const RequireEnv = "PIDPRESSURE_REQUIRE_SUPPORTED"

// SkipIfNotSupported skips the test when err says this host does not have,
// or does not let the test use, what it needs (hostfs.ErrNotSupported);
// with RequireEnv set it fails instead. Any other error fails the test. A
// nil err returns.
func SkipIfNotSupported(tb testing.TB, err error) {
	tb.Helper()
	if !Supported(tb, err) {
		tb.Skipf("not supported here: %v", err)
	}
}

// Supported is SkipIfNotSupported for a test that carries on either way:
// false (and a log line) where this host does not support what err is
// about; a failure where RequireEnv is set or err is another error.
func Supported(tb testing.TB, err error) bool {
	tb.Helper()
	switch {
	case err == nil:
		return true
	case !errors.Is(err, hostfs.ErrNotSupported):
		tb.Fatal(err)
	case os.Getenv(RequireEnv) != "":
		tb.Fatalf("%v (%s is set: everything must be supported here)", err, RequireEnv)
	}
	tb.Logf("not supported here: %v", err)
	return false
}

// CProgram returns the program that the environment variable env names
// (prebuilt: the node VM has no compiler), or builds src with gcc and
// flags into the test's temporary directory.
func CProgram(tb testing.TB, env, src string, flags ...string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	bin := filepath.Join(tb.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c"))
	args := append(append([]string{"-O2", "-Wall"}, flags...), "-o", bin, src)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		tb.Fatalf("building %s: %v\n%s", src, err, out)
	}
	return bin
}

// WaitBlocked waits until a goroutine is blocked (in a select, a channel
// operation, a system call or I/O wait: anything but running) inside the
// function named fn, as runtime.Stack prints it ("kmsg.(*Reader).Next"),
// and fails the test after limit. A test that says Close unblocks a reader
// first proves the reader was blocked with it.
func WaitBlocked(tb testing.TB, fn string, limit time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			if strings.Contains(g, fn+"(") && !strings.Contains(header, "[running]") && !strings.Contains(header, "[runnable]") {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no goroutine blocked in %s after %v", fn, limit)
		}
		time.Sleep(time.Millisecond) // polling the goroutines' state, not waiting for it
	}
}
