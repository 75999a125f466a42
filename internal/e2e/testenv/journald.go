package testenv

import (
	"os/exec"
	"syscall"

	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// EnsureJournald starts a standalone systemd-journald, with a reader
// attached so that it does not exit when idle, unless one already answers.
// stop ends what it started, by PID.
func EnsureJournald() (stop func(), err error) {
	if journald.Alive() {
		return func() {}, nil
	}
	pid, err := journald.Start()
	if err != nil {
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		return nil, err
	}
	r := exec.Command("journalctl", "-f", "-n", "0")
	if err := r.Start(); err != nil {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		return nil, err
	}
	return func() {
		_ = r.Process.Signal(syscall.SIGTERM)
		_ = r.Wait()
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}, nil
}
