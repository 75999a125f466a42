package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build builds the agent (cmd/node-problem-detector) and the CLI
// (cmd/pidpressure) from the repository at root into dir, with cgo for the
// journal, and returns their paths.
func Build(ctx context.Context, root, dir string) (npd, cli string, err error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/node-problem-detector", "./cmd/pidpressure")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build the agent: %w\n%s", err, out)
	}
	return filepath.Join(dir, "node-problem-detector"), filepath.Join(dir, "pidpressure"), nil
}

// BuildUpstreamNPD builds upstream Node Problem Detector, of the version
// this repository's go.mod pins, into dir: its own main package with its
// own monitors and exporters (the Stackdriver exporter left out, as the
// cloud SDKs are not in the module graph), stamped with that version. The
// fleet test measures it side by side with this agent.
func BuildUpstreamNPD(ctx context.Context, root, dir string) (string, error) {
	list := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "k8s.io/node-problem-detector")
	list.Dir = root
	v, err := list.Output()
	if err != nil {
		return "", fmt.Errorf("the pinned NPD version: %w", err)
	}
	out := filepath.Join(dir, "node-problem-detector-upstream")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "disable_stackdriver_exporter",
		"-ldflags", "-X k8s.io/node-problem-detector/pkg/version.version="+strings.TrimSpace(string(v)),
		"-o", out, "k8s.io/node-problem-detector/cmd/nodeproblemdetector")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build upstream NPD: %w\n%s", err, b)
	}
	return out, nil
}

// Monitor is the pid-pressure monitor config the tests run with: the
// embedded defaults with short windows so a scenario takes seconds.
type Monitor struct {
	SampleInterval string // default 500ms
	FailureWindow  string // default 3s
	QuietPeriod    string // default 10s
	EventInterval  string // default 5s
	PidsEvents     bool   // the pids.events watcher (cgroup scenarios)
	EBPF           string // sources.ebpf.mode (default auto)
	// Config, if set, is the whole monitor file instead (a shipped one,
	// adjusted), and the fields above are ignored.
	Config map[string]any
}

func (m Monitor) json() string {
	if m.Config != nil {
		b, _ := json.Marshal(m.Config)
		return string(b)
	}
	or := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	return fmt.Sprintf(`{"sampleInterval": %q, "thresholds": {"failureWindow": %q, "quietPeriod": %q}, "events": {"interval": %q}, "sources": {"pidsEvents": {"enabled": %t}, "ebpf": {"mode": %q}}}`,
		or(m.SampleInterval, "500ms"), or(m.FailureWindow, "3s"), or(m.QuietPeriod, "10s"), or(m.EventInterval, "5s"), m.PidsEvents, or(m.EBPF, "auto"))
}

// Agent is a running node-problem-detector.
type Agent struct {
	Node    string
	Log     string // its stderr (NPD logs there)
	Metrics string // host:port of the pid-pressure monitor's /metrics and /healthz ("" for the exec-based agent)
	cmd     *exec.Cmd
	// Init is the PID (in this namespace) of the PID namespace's init when
	// the agent runs in its own PID namespace, else 0.
	Init int
}

// AgentSpec says how to run the agent.
type AgentSpec struct {
	NPD        string // the node-problem-detector binary
	Node       string
	Kubeconfig string
	APIServer  string // the apiserver's URL
	Dir        string // for its config, state and log
	Monitor    *Monitor
	// CustomPlugin, if set, is a custom plugin monitor config: the
	// exec-based alternative, instead of the in-process monitor.
	CustomPlugin string
	// PIDMax, if set, runs the agent in a new PID namespace whose pid_max is
	// lowered to this (at least 400): the node this namespace stands for.
	PIDMax int
	// Cgroup, if set, is a cgroup v1 directory the agent is started in.
	Cgroup string
	// Args are extra NPD flags (e.g. --v=3).
	Args []string
}

// StartAgent starts node-problem-detector reporting to the apiserver.
func StartAgent(s AgentSpec) (*Agent, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{
		"--apiserver-override=" + s.APIServer + "?inClusterConfig=false&auth=" + s.Kubeconfig,
		"--prometheus-port=0", // NPD's problem metrics: not needed, and several agents run at once
		"--port=0",            // NPD's own /healthz and /conditions: the same
		"--hostname-override=" + s.Node,
	}
	a := &Agent{Node: s.Node, Log: filepath.Join(s.Dir, "npd.log")}
	if s.CustomPlugin != "" {
		args = append(args, "--config.custom-plugin-monitor="+s.CustomPlugin)
	} else {
		m := Monitor{}
		if s.Monitor != nil {
			m = *s.Monitor
		}
		conf := filepath.Join(s.Dir, "monitor.json")
		if err := os.WriteFile(conf, []byte(m.json()), 0o644); err != nil {
			return nil, err
		}
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		a.Metrics = "127.0.0.1:" + strconv.Itoa(port)
		args = append(args, "--config.pid-pressure-monitor="+conf, "--metrics-address="+a.Metrics)
	}
	args = append(args, s.Args...)
	logf, err := os.Create(a.Log)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	var cmd *exec.Cmd
	if s.PIDMax > 0 {
		// The namespace's init is a shell that lowers pid_max, runs the agent
		// and reaps whatever is orphaned in the namespace; when it dies the
		// kernel kills the rest of the namespace.
		script := fmt.Sprintf(`echo %d > /proc/sys/kernel/pid_max || exit 77; "$@" & wait`, s.PIDMax)
		cmd = exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script, "sh", s.NPD}, args...)...)
	} else {
		cmd = exec.Command(s.NPD, args...)
	}
	if s.Cgroup != "" {
		// Enter the cgroup before exec, so that the agent (and its
		// namespace's init) never run outside it; cgroup v1 has no
		// CLONE_INTO_CGROUP.
		cmd = exec.Command("sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, s.Cgroup, cmd.Path}, cmd.Args[1:]...)...)
	}
	cmd.Env = append(os.Environ(), "NODE_NAME="+s.Node)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the agent: %w", err)
	}
	a.cmd = cmd
	if s.PIDMax > 0 {
		if a.Init, err = childOf(cmd.Process.Pid, 5*time.Second); err != nil {
			_ = a.Stop()
			return nil, err
		}
	}
	return a, nil
}

// childOf waits for pid's first child (unshare's forked init).
func childOf(pid int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("process %d started no PID namespace init within %s", pid, timeout)
}

// PID is the agent's process (in this PID namespace; with PIDMax, the
// unshare that runs its namespace).
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// Alive reports whether the agent process is still running.
func (a *Agent) Alive() bool {
	return a.cmd.ProcessState == nil && syscall.Kill(a.cmd.Process.Pid, 0) == nil
}

// Stop ends the agent (and its PID namespace) by PID and waits for it.
func (a *Agent) Stop() error {
	if a.cmd == nil || a.cmd.ProcessState != nil {
		return nil
	}
	if a.Init > 0 {
		// A namespace init ignores SIGTERM; SIGKILL to it ends the namespace.
		_ = syscall.Kill(a.Init, syscall.SIGKILL)
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		return ignoreSignalled(err)
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		return ignoreSignalled(<-done)
	}
}

// ignoreSignalled drops the error of a process that ended because it was
// told to.
func ignoreSignalled(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil
	}
	return err
}

// WaitHealthy waits until the in-process monitor answers /healthz with
// every source up.
func (a *Agent) WaitHealthy(ctx context.Context) error {
	if a.Metrics == "" {
		return nil
	}
	var last string
	for {
		if r, err := http.Get("http://" + a.Metrics + "/healthz"); err == nil { //nolint:noctx // short, local
			b := make([]byte, 4096)
			n, _ := r.Body.Read(b)
			_ = r.Body.Close()
			last = string(b[:n])
			if r.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !a.Alive() {
			return fmt.Errorf("the agent exited: %s", a.Tail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agent was not healthy in time (last /healthz %q): %w", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tail is the end of the agent's log, for failure messages.
func (a *Agent) Tail() string {
	b, _ := os.ReadFile(a.Log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// FreePort asks the kernel for a free TCP port on loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
