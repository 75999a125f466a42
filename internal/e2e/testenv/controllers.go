package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ControllersEnv names the directory holding kube-controller-manager and
// kube-scheduler (make controllers prints it; make test-e2e sets it).
const ControllersEnv = "CONTROLLERS_BIN"

// Controllers are kube-controller-manager and kube-scheduler running
// against a Cluster: what a real node's pods need beyond the apiserver.
type Controllers struct {
	procs []*exec.Cmd
	logs  []*os.File
	Logs  []string // their log files, under the cluster's directory
}

// StartControllers runs, from the binaries in dir, kube-controller-manager
// with only the controllers a node of this harness needs (the DaemonSet
// controller, the kube-root-ca.crt publisher that every pod's service
// account token volume mounts, the service-account controller, the
// garbage collector, and the namespace controller, which finishes deleting
// a namespace that an earlier test deleted) and kube-scheduler, both as the admin, without leader
// election or a serving port. Stop them with Stop.
func (c *Cluster) StartControllers(dir string) (*Controllers, error) {
	ca := filepath.Join(c.Dir, "apiserver", "ca.crt")
	cmds := map[string][]string{
		"kube-controller-manager": {
			"--kubeconfig=" + c.Admin, "--leader-elect=false", "--secure-port=0",
			"--controllers=daemonset,root-ca-cert-publisher,serviceaccount,garbagecollector,namespace",
			"--root-ca-file=" + ca, "--use-service-account-credentials=false",
		},
		"kube-scheduler": {"--kubeconfig=" + c.Admin, "--leader-elect=false", "--secure-port=0"},
	}
	ctl := &Controllers{}
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		bin := filepath.Join(dir, name)
		if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
			_ = ctl.Stop()
			return nil, fmt.Errorf("no executable %s in %s (make controllers)", name, dir)
		}
		log, err := os.Create(filepath.Join(c.Dir, name+".log"))
		if err != nil {
			_ = ctl.Stop()
			return nil, err
		}
		cmd := exec.Command(bin, cmds[name]...)
		cmd.Stdout, cmd.Stderr = log, log
		// They die with the test process whatever happens to it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			_ = log.Close()
			_ = ctl.Stop()
			return nil, fmt.Errorf("starting %s: %w", name, err)
		}
		ctl.procs = append(ctl.procs, cmd)
		ctl.logs = append(ctl.logs, log)
		ctl.Logs = append(ctl.Logs, log.Name())
	}
	return ctl, nil
}

// Stop kills the controllers by PID and waits for them.
func (ctl *Controllers) Stop() error {
	var errs []error
	for _, p := range ctl.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }() // killed by us: its exit status says nothing
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	for _, l := range ctl.logs {
		errs = append(errs, l.Close())
	}
	ctl.procs, ctl.logs = nil, nil
	return errors.Join(errs...)
}
