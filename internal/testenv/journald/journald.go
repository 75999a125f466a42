// Package journald runs a real, standalone systemd-journald for tests on
// a machine where PID 1 is not systemd, and writes entries to it.
//
// Test packages share one journald: each holds a shared lock on a lock file
// while it runs; the package that starts journald records its PID, and the
// last package to finish (the one that gets the lock exclusively) stops it by
// that PID. A journald that was already running is never stopped.
package journald

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Paths of the system journald.
const (
	Binary   = "/lib/systemd/systemd-journald"
	Socket   = "/run/systemd/journal/socket"
	lockFile = "/run/pidpressure-test-journald.lock"
	pidFile  = "/run/pidpressure-test-journald.pid"
)

// lock is held shared by this process while it uses journald.
var lock *os.File // one per test process, released by Release

// Alive reports whether journald answers on its native socket.
func Alive() bool {
	c, err := net.Dial("unixgram", Socket)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Ensure makes sure journald runs, starting it if needed, or skips the test
// (not root, no journald binary, -short). Call Release from TestMain.
func Ensure(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("live journald test (skipped under -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("starting journald needs root")
	}
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("no %s: install the systemd package", Binary)
	}
	if lock == nil {
		f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
			t.Fatal(err)
		}
		lock = f
	}
	if Alive() {
		return
	}
	pid, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Start starts a standalone journald in a session of its own and waits
// until it answers on its socket; it returns journald's PID, by which the
// caller stops it.
func Start() (int, error) {
	if _, err := os.Stat(Binary); err != nil {
		return 0, fmt.Errorf("no %s: install the systemd package", Binary)
	}
	if err := os.MkdirAll(filepath.Dir(Socket), 0o755); err != nil {
		return 0, err
	}
	cmd := exec.Command(Binary)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting journald: %w", err)
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reap it when it exits
	for i := 0; i < 100 && !Alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !Alive() {
		return pid, fmt.Errorf("journald (pid %d) did not open %s", pid, Socket)
	}
	return pid, nil
}

// Release ends this process's use of journald; if no other test process uses
// it and a test process started it, it is stopped by its recorded PID.
func Release() {
	if lock == nil {
		return
	}
	defer func() { _ = lock.Close(); lock = nil }()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return // another test process still uses it
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && pid > 1 && isJournald(pid) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		// Hold the lock until it is gone: a test process that takes the
		// lock next must not find it still answering, skip starting one,
		// and then lose it.
		for deadline := time.Now().Add(10 * time.Second); Alive() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond) // polling its socket
		}
	}
	_ = os.Remove(pidFile)
}

func isJournald(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) == "systemd-journal"
}

// Cat writes each line to the journal with systemd-cat under identifier id,
// as a program's output would be, and waits for it to finish.
func Cat(t testing.TB, id string, lines ...string) {
	t.Helper()
	cmd := exec.Command("systemd-cat", "-t", id)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-cat: %v: %s", err, out)
	}
}

// Rotate asks journald to rotate its files (SIGUSR2, as journalctl --rotate
// does without systemd) and waits until it has archived one.
func Rotate(t testing.TB) {
	t.Helper()
	pid, err := journaldPID()
	if err != nil {
		t.Fatal(err)
	}
	mid, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, base := range []string{"/var/log/journal", "/run/log/journal"} {
		dirs = append(dirs, filepath.Join(base, strings.TrimSpace(string(mid))))
	}
	rotate(t, pid, dirs...)
}

// rotate signals journald pid to rotate and waits until it has: SIGUSR2
// returns at once, the rotation follows. A rotation archives the active
// system.journal and opens a new one, so the file at that name changes (a
// count of archived files would not do: journald may vacuum one as it
// archives another).
func rotate(t testing.TB, pid int, dirs ...string) {
	t.Helper()
	active := func() map[string]uint64 {
		inodes := map[string]uint64{}
		for _, d := range dirs {
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join(d, "system.journal"), &st) == nil {
				inodes[d] = st.Ino
			}
		}
		return inodes
	}
	before := active()
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	rotated := func() bool {
		for d, ino := range active() {
			if old, ok := before[d]; !ok || old != ino {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !rotated(); {
		if time.Now().After(deadline) {
			t.Fatalf("journald (pid %d) did not rotate %v within 10 s of SIGUSR2", pid, dirs)
		}
		time.Sleep(10 * time.Millisecond) // polling the directory, not waiting for it
	}
}

func journaldPID() (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && isJournald(pid) {
			return pid, nil
		}
	}
	return 0, errors.New("journald is not running")
}

// Namespace is a separate journald instance (a journal namespace) with its
// own sockets and journal directory, for tests that need a journal of
// their own.
type Namespace struct {
	// Name is the namespace.
	Name string
	// Socket is its native-protocol socket.
	Socket string
	// Dir is its journal directory, for sdjournal.NewJournalFromDir.
	Dir string
	pid int
}

// StartNamespace starts journald for a new namespace and stops it, removing
// its sockets and journal files, when the test ends.
func StartNamespace(t testing.TB, name string) *Namespace {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting journald needs root")
	}
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("no %s", Binary)
	}
	mid, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Skipf("no machine ID: %v", err)
	}
	ns := &Namespace{
		Name:   name,
		Socket: "/run/systemd/journal." + name + "/socket",
		Dir:    "/var/log/journal/" + strings.TrimSpace(string(mid)) + "." + name,
	}
	cmd := exec.Command(Binary, name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting journald for namespace %s: %v", name, err)
	}
	ns.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(ns.pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(ns.pid, syscall.SIGKILL)
			<-exited
		}
		_ = os.RemoveAll(ns.Dir)
		_ = os.RemoveAll(filepath.Dir(ns.Socket))
	})
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("unixgram", ns.Socket); err == nil {
			_ = c.Close()
			return ns
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("journald for namespace %s did not open %s", name, ns.Socket)
	return nil
}

// Send writes entries with the native protocol ("KEY=value" lines, one
// datagram per entry; values must not contain newlines).
func (ns *Namespace) Send(t testing.TB, entries ...map[string]string) {
	t.Helper()
	c, err := net.Dial("unixgram", ns.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	var b strings.Builder
	for _, e := range entries {
		b.Reset()
		for k, v := range e {
			b.WriteString(k + "=" + v + "\n")
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			t.Fatal(err)
		}
	}
}

// Rotate makes the namespace's journald archive its active file (SIGUSR2).
func (ns *Namespace) Rotate(t testing.TB) {
	t.Helper()
	rotate(t, ns.pid, ns.Dir)
}

// CopyFile copies from to a new file to with mode (not narrowed by the
// umask): real journal files, or a test binary, for a test that reads them
// as another user.
func CopyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}
