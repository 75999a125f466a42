// Package reproduce makes real programs fail for real to create processes
// and threads: a Go program locking OS threads, a C program calling
// pthread_create, a bash fork loop, and Python, Java and Node programs
// where the machine has them — inside a cgroup v1/v2 pids cgroup with a
// small pids.max, or inside a new PID namespace with its own small pid_max
// (Linux 6.14+). It captures what they print, directly or through journald
// (systemd-cat), for the tests and, later, the end-to-end tests.
//
// Everything it creates is removed by path and PID when the run ends. It
// never changes the machine's global kernel.pid_max or threads-max.
package reproduce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrUnavailable is returned when a program or facility is missing here.
var ErrUnavailable = errors.New("not available on this machine")

// Program is a real program that fails to create processes or threads.
type Program struct {
	// Name identifies it.
	Name string
	// Expect lists signatures its output must contain (any of them).
	Expect []string
	// build prepares it in dir and returns its command line.
	build func(dir string) ([]string, error)
}

func srcDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "captured", "src")
}

func need(bin string) error {
	if _, err := exec.LookPath(bin); err != nil {
		return fmt.Errorf("%s: %w", bin, ErrUnavailable)
	}
	return nil
}

// Programs returns the programs; Build reports ErrUnavailable for those
// whose toolchain is missing.
func Programs() []Program {
	return []Program{
		{Name: "go-threads", Expect: []string{"GoThreadCreateFailed", "CgoPthreadCreateFailed"}, build: func(dir string) ([]string, error) {
			out := filepath.Join(dir, "gothreads")
			cmd := exec.Command("go", "build", "-o", out, filepath.Join(srcDir(), "gothreads.go"))
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("go build: %w: %s", err, b)
			}
			return []string{out}, nil
		}},
		{Name: "c-pthread", Expect: []string{"ThreadCreateFailed"}, build: func(dir string) ([]string, error) {
			if err := need("gcc"); err != nil {
				return nil, err
			}
			out := filepath.Join(dir, "cthreads")
			if b, err := exec.Command("gcc", "-O2", "-pthread", "-o", out, filepath.Join(srcDir(), "cthreads.c")).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("gcc: %w: %s", err, b)
			}
			return []string{out}, nil
		}},
		{Name: "bash-fork", Expect: []string{"ShellForkRetry", "ShellForkFailed"}, build: func(string) ([]string, error) {
			if err := need("bash"); err != nil {
				return nil, err
			}
			return []string{"bash", "-c", "for i in $(seq 1 600); do sleep 5 & done; wait"}, nil
		}},
		{Name: "python-threads", Expect: []string{"PythonThreadStartFailed"}, build: func(string) ([]string, error) {
			if err := need("python3"); err != nil {
				return nil, err
			}
			return []string{"python3", filepath.Join(srcDir(), "pythreads.py")}, nil
		}},
		{Name: "java-threads", Expect: []string{"JavaThreadStartFailed", "JavaNativeThreadOOM"}, build: func(dir string) ([]string, error) {
			if err := need("javac"); err != nil {
				return nil, err
			}
			if b, err := exec.Command("javac", "-d", dir, filepath.Join(srcDir(), "Threads.java")).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("javac: %w: %s", err, b)
			}
			return []string{"java", "-Xss256k", "-cp", dir, "Threads"}, nil
		}},
		{Name: "node-spawn", Expect: []string{"NodeSpawnFailed"}, build: func(string) ([]string, error) {
			if err := need("node"); err != nil {
				return nil, err
			}
			return []string{"node", filepath.Join(srcDir(), "nodespawn.js")}, nil
		}},
	}
}

// Named returns the program called name (see Programs).
func Named(name string) (Program, bool) {
	for _, p := range Programs() {
		if p.Name == name {
			return p, true
		}
	}
	return Program{}, false
}

// Build prepares the program in dir and returns its command line.
func (p Program) Build(dir string) ([]string, error) { return p.build(dir) }

// Limit is where a program runs out of tasks.
type Limit struct {
	// CgroupMax runs it in a new pids cgroup with this pids.max (when > 0).
	CgroupMax int
	// Hierarchy is the pids hierarchy for CgroupMax (found when empty).
	Hierarchy string
	// PIDMax runs it in a new PID namespace with this pid_max (when > 0).
	PIDMax int
}

// Options control a run.
type Options struct {
	// Timeout bounds the run; programs that keep retrying are killed then.
	Timeout time.Duration
	// JournalTag sends the program's output to journald through
	// systemd-cat under this identifier instead of capturing it.
	JournalTag string
}

// Result is what a run produced.
type Result struct {
	// Output is what the program printed (empty when sent to the journal).
	Output string
	// Cgroup is the path of the cgroup used, relative to its hierarchy.
	Cgroup string
	// Refused is the cgroup's pids.events max count at the end.
	Refused uint64
}

// PidsHierarchy returns this machine's pids cgroup hierarchy.
func PidsHierarchy() (string, error) {
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && bytes.Contains(b, []byte("pids")) {
		return "/sys/fs/cgroup", nil
	}
	if _, err := os.Stat("/sys/fs/cgroup/pids/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/pids", nil
	}
	return "", fmt.Errorf("pids cgroup controller: %w", ErrUnavailable)
}

// Run runs argv under the limit and returns what happened. The program is
// expected to fail; its exit status is not an error.
func Run(ctx context.Context, argv []string, lim Limit, opt Options) (Result, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	var res Result
	var prefix []string
	if opt.JournalTag != "" {
		if err := need("systemd-cat"); err != nil {
			return res, err
		}
		prefix = []string{"systemd-cat", "-t", opt.JournalTag}
	}
	cmdline := quote(append(prefix, argv...))
	var script string
	var cgDir string
	switch {
	case lim.CgroupMax > 0:
		hier := lim.Hierarchy
		if hier == "" {
			h, err := PidsHierarchy()
			if err != nil {
				return res, err
			}
			hier = h
		}
		name := fmt.Sprintf("pprepro-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
		cgDir = filepath.Join(hier, name)
		if err := os.Mkdir(cgDir, 0o755); err != nil {
			return res, fmt.Errorf("creating cgroup: %w", err)
		}
		defer func() { _ = RemoveCgroup(cgDir) }()
		if err := os.WriteFile(filepath.Join(cgDir, "pids.max"), []byte(strconv.Itoa(lim.CgroupMax)), 0o644); err != nil {
			return res, fmt.Errorf("setting pids.max: %w", err)
		}
		res.Cgroup = "/" + name
		script = fmt.Sprintf("echo $$ > %s/cgroup.procs && exec %s", cgDir, cmdline)
	case lim.PIDMax > 0:
		if err := need("unshare"); err != nil {
			return res, err
		}
		script = fmt.Sprintf("echo %d > /proc/sys/kernel/pid_max || exit 77; exec %s", lim.PIDMax, cmdline)
	default:
		return res, errors.New("no limit given")
	}
	var cmd *exec.Cmd
	if lim.PIDMax > 0 {
		cmd = exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script)
	} else {
		cmd = exec.Command("sh", "-c", script)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the whole process group
		err = <-done
	}
	res.Output = out.String()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 77 && lim.PIDMax > 0 {
		return res, fmt.Errorf("per-namespace pid_max (Linux 6.14+): %w", ErrUnavailable)
	}
	if cgDir != "" {
		res.Refused = refused(cgDir)
	}
	return res, nil
}

func quote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func refused(dir string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, "pids.events"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "max "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// RemoveCgroup kills what is left in the cgroup directory dir, by PID, and
// removes it (gone already is fine).
func RemoveCgroup(dir string) error {
	for range 100 {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, p := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
		if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("could not remove cgroup %s", dir)
}
