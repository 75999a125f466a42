package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// EnsureJournald starts a standalone systemd-journald, with a reader
// attached so that it does not exit when idle, unless one already answers.
// stop ends what it started, by PID.
func EnsureJournald() (stop func(), err error) {
	if journald.Alive() {
		return func() {}, nil
	}
	if _, err := os.Stat(journald.Binary); err != nil {
		return nil, errors.New("no " + journald.Binary + ": install the systemd package")
	}
	if err := os.MkdirAll(filepath.Dir(journald.Socket), 0o755); err != nil {
		return nil, err
	}
	d := exec.Command(journald.Binary)
	d.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.Start(); err != nil {
		return nil, err
	}
	for i := 0; i < 100 && !journald.Alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	r := exec.Command("journalctl", "-f", "-n", "0")
	if err := r.Start(); err != nil {
		_ = d.Process.Kill()
		_ = d.Wait()
		return nil, err
	}
	return func() {
		for _, c := range []*exec.Cmd{r, d} {
			_ = c.Process.Signal(syscall.SIGTERM)
			_ = c.Wait()
		}
	}, nil
}
