package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pidpressure/pidpressure/internal/reproduce"
)

// Prerequisites reports what this machine lacks for the end-to-end
// scenarios: root, the cgroup v1 pids controller, journald and the programs
// that really fail or log.
func Prerequisites() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := os.Stat(filepath.Join(PidsRoot, "cgroup.procs")); err != nil {
		missing = append(missing, "the cgroup v1 pids controller at "+PidsRoot)
	}
	for _, bin := range []string{"unshare", "nsenter", "setpriv", "logger", "systemd-cat", "bash", "perl", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the end-to-end scenarios need %s", strings.Join(missing, ", "))
	}
	return nil
}

// Cgroup hierarchies on this machine (DESIGN: cgroup v1 pids, and a
// controller-less cgroup2 that journald reads units from).
const (
	PidsRoot    = "/sys/fs/cgroup/pids"
	UnifiedRoot = "/sys/fs/cgroup/unified"
)

// MakeCgroup creates dir (and missing parents) and returns a function that
// kills whatever is left in each directory it created and removes them,
// deepest first.
func MakeCgroup(dir string) (remove func() error, err error) {
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return func() error {
		var errs []error
		for _, d := range created {
			errs = append(errs, reproduce.RemoveCgroup(d))
		}
		return errors.Join(errs...)
	}, nil
}

// BuildGoThreads builds, into dir, the Go program that creates OS threads
// until the runtime dies with "failed to create new OS thread"
// (reproduce's go-threads).
func BuildGoThreads(dir string) (string, error) {
	p, _ := reproduce.Named("go-threads")
	argv, err := p.Build(dir)
	if err != nil {
		return "", err
	}
	return argv[0], nil
}

// Load is a set of programs exhausting a PID namespace, each in its own
// process group.
type Load struct{ cmds []*exec.Cmd }

// IncidentLoad enters the PID namespace of init and starts, as on the
// incident's node, bash loops that keep forking long `sleep`s (each failed
// fork prints "fork: retry: Resource temporarily unavailable"; the
// namespace stays full until Stop) and, if
// goThreads is set, a Go program that creates threads until the runtime
// fails with "failed to create new OS thread". Their output goes to journald
// through systemd-cat under tag. Stop ends them.
func IncidentLoad(init int, tag, goThreads string) (*Load, error) {
	ns := []string{"--target", strconv.Itoa(init), "--pid", "--mount", "--"}
	// Builtin arithmetic, not $(seq …): a command substitution needs a fork
	// of its own and would fail first.
	loop := `while :; do for ((i = 0; i < 600; i++)); do sleep 120 & done; wait; done`
	progs := [][]string{append(append([]string{}, ns...), "systemd-cat", "-t", tag, "bash", "-c", loop)}
	if goThreads != "" {
		progs = append(progs, append(append([]string{}, ns...), "systemd-cat", "-t", tag+"-go", goThreads))
	}
	l := &Load{}
	for _, p := range progs {
		cmd := exec.Command("nsenter", p...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			l.Stop()
			return nil, fmt.Errorf("starting the load: %w", err)
		}
		l.cmds = append(l.cmds, cmd)
		go func() { _ = cmd.Wait() }()
	}
	return l, nil
}

// StormLoad enters the PID namespace of init and holds it full for as long
// as it runs, while loops keep trying to start a program: each of their
// forks fails, and bash logs "fork: retry: Resource temporarily
// unavailable" as it backs off (1 to 16 s) and then gives up with "fork:
// Resource temporarily unavailable", again and again — a failure storm for
// as long as the load runs, with little CPU. The loops start first, as
// nothing can start in the namespace once it is full; their output goes
// to journald under tag.
func StormLoad(init, loops int, tag string) (*Load, error) {
	script := fmt.Sprintf(`for ((j = 0; j < %d; j++)); do (while :; do sleep 1; done) & done; sleep 1; while :; do sleep 100000 & done`, loops)
	return startInNamespace(init, tag, script)
}

// GrowthLoad enters the PID namespace of init and adds a sleeping process
// every interval, up to n: the steady growth a leak makes, which the
// agent's trend predicts. It holds them until Stop.
func GrowthLoad(init, n int, interval time.Duration, tag string) (*Load, error) {
	script := fmt.Sprintf(`for ((i = 0; i < %d; i++)); do sleep 100000 & sleep %.3f; done; wait`, n, interval.Seconds())
	return startInNamespace(init, tag, script)
}

func startInNamespace(init int, tag, script string) (*Load, error) {
	cmd := exec.Command("nsenter", "--target", strconv.Itoa(init), "--pid", "--mount", "--", "systemd-cat", "-t", tag, "bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the load: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return &Load{cmds: []*exec.Cmd{cmd}}, nil
}

// Stop kills the load's process groups.
func (l *Load) Stop() {
	for _, c := range l.cmds {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
}

// Forge logs line to journald as a non-root user (UID 65534) who claims
// to be ident, through the syslog socket.
func Forge(ctx context.Context, ident, line string) error {
	cmd := exec.CommandContext(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"logger", "-u", "/run/systemd/journal/dev-log", "-t", ident, line)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("logger as UID 65534: %w: %s", err, out)
	}
	return nil
}

// RunInUnit runs prog in cgroups standing in for a systemd unit (the
// cgroup2 path journald reads _SYSTEMD_UNIT from, and the pids cgroup that
// limits it), logging through journald as ident, and waits for it.
func RunInUnit(ctx context.Context, unifiedDir, pidsDir, ident, prog string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-c", `echo $$ > "$1/cgroup.procs" && echo $$ > "$2/cgroup.procs" && exec systemd-cat -t "$3" "$4"`,
		"sh", unifiedDir, pidsDir, ident, prog)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// RefuseForks moves a perl interpreter into the cgroup dir (already at its
// pids.max) and has it try n forks; it returns how many were refused.
func RefuseForks(ctx context.Context, dir string, n int) (int, error) {
	script := fmt.Sprintf(`my $r = 0; for (1..%d) { my $p = fork(); if (!defined $p) { $r++; next } if ($p == 0) { exit 0 } waitpid($p, 0) } print "$r\n"`, n)
	cmd := exec.CommandContext(ctx, "sh", "-c", `echo $$ > "$1/cgroup.procs" && exec perl -e "$2"`, "sh", dir, script)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("perl in %s: %w", dir, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}
