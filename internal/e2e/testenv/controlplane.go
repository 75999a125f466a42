// Package testenv is the end-to-end harness: a real etcd and kube-apiserver
// on loopback (started by controller-runtime's envtest from binaries built
// from the Go module proxy), the agent built from this repository, PID
// namespaces and cgroups to exhaust, and programs that really fail in them.
// The end-to-end tests, make demo and the latency benchmark share it, so its
// functions return errors rather than take a *testing.T.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pidpressure/pidpressure/internal/e2e/nodevm"
)

// RepoRoot finds the repository root (the directory holding
// hack/controlplane) from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "hack", "controlplane", "kubernetes", "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no hack/controlplane above %s: run from inside the pidpressure repository", dir)
		}
	}
}

// ControlPlaneBinaries returns a directory holding kube-apiserver, etcd
// and kubectl: KUBEBUILDER_ASSETS if set, otherwise the cache that
// `make controlplane` fills (building once, under a lock, if it is empty:
// 11–25 minutes cold on 2 cores). Build output goes to log.
func ControlPlaneBinaries(ctx context.Context, root string, log io.Writer) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, checkBinaries(dir)
	}
	dir, err := nodevm.MakeDir(ctx, root, "controlplane", log)
	if err != nil {
		return "", err
	}
	return dir, checkBinaries(dir)
}

func checkBinaries(dir string) error {
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("control plane binaries: no executable %s in %s (run make controlplane)", b, dir)
		}
	}
	return nil
}

// Cluster is a running control plane.
type Cluster struct {
	env     *envtest.Environment
	Bin     string // kube-apiserver, etcd and kubectl
	Dir     string // kubeconfigs and certificates; removed by Stop
	Admin   string // an admin's kubeconfig (group system:masters)
	Client  kubernetes.Interface
	Started time.Duration // how long the control plane took to come up
}

// Start runs etcd and kube-apiserver on loopback from the binaries in bin.
// Stop it with Stop.
func Start(bin string) (*Cluster, error) { return StartWith(bin, nil) }

// StartWith is Start with more kube-apiserver flags (name to value).
func StartWith(bin string, flags map[string]string) (*Cluster, error) {
	// envtest logs through controller-runtime's logger, which prints a
	// stack trace ("log.SetLogger(...) was never called") when unset; its
	// processes' own output is what the tests read.
	ctrllog.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "pidpressure-e2e-")
	if err != nil {
		return nil, err
	}
	certs := filepath.Join(dir, "apiserver")
	if err := os.Mkdir(certs, 0o700); err != nil {
		return nil, err
	}
	// A fixed certificate directory (rather than envtest's temporary one)
	// keeps the serving certificate and the client CA across a restart, so
	// that kubeconfigs stay valid through an apiserver outage.
	api := &envtest.APIServer{CertDir: certs, StartTimeout: 60 * time.Second, StopTimeout: 30 * time.Second}
	if api.CA, err = writeCerts(certs); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("the apiserver's certificates: %w", err)
	}
	// On loopback, with no endpoint reconciler (the advertise address
	// alone is rejected).
	// The ServiceAccount admission plugin, which envtest disables, is on:
	// the real node's pods mount their service account's token from it.
	// The audit log records every request of the agents (AgentGroup) and
	// of the real node's DaemonSet, and nothing else: the write budget is
	// counted from it (Requests).
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	api.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none").
		Set("audit-policy-file", policy).
		Set("audit-log-path", filepath.Join(dir, auditLog)).
		Set("audit-log-maxbackup", "0").
		Disable("disable-admission-plugins")
	for k, v := range flags {
		api.Configure().Set(k, v)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		ControlPlane: envtest.ControlPlane{
			APIServer: api,
			Etcd:      &envtest.Etcd{StartTimeout: 60 * time.Second},
		},
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	t0 := time.Now()
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s: %w", bin, err)
	}
	c := &Cluster{env: env, Bin: bin, Dir: dir, Started: time.Since(t0)}
	if c.Admin, err = c.AddUser("admin", "system:masters"); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops kube-apiserver and etcd and removes their files.
func (c *Cluster) Stop() error {
	err := c.env.Stop()
	return errors.Join(err, os.RemoveAll(c.Dir))
}

// StopAPIServer kills kube-apiserver by PID (etcd keeps running): an
// outage as a crash or a lost control-plane node makes it. A SIGTERM would
// start a graceful shutdown that holds connections open for a while.
func (c *Cluster) StopAPIServer() error {
	exe := filepath.Join(c.Bin, "kube-apiserver")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	killed := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && p == exe && strings.Contains(cmdline(pid), c.Dir) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				killed++
			}
		}
	}
	if killed == 0 {
		return fmt.Errorf("no kube-apiserver of this cluster (%s) is running", exe)
	}
	// envtest notices the exit and then has nothing left to stop.
	return c.env.ControlPlane.APIServer.Stop()
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(b)
}

// StartAPIServer starts it again on the same port with the same
// certificates, and waits until it is healthy.
func (c *Cluster) StartAPIServer() error { return c.env.ControlPlane.APIServer.Start() }

// URL is the apiserver's address.
func (c *Cluster) URL() string {
	return c.env.ControlPlane.APIServer.SecureServing.URL("https", "").String()
}

// AddUser issues a client certificate for name in groups and returns the
// path of a kubeconfig that uses it.
func (c *Cluster) AddUser(name string, groups ...string) (string, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", name, err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, "kubeconfig-"+strings.NewReplacer(":", "_", "/", "_").Replace(name))
	return path, os.WriteFile(path, kc, 0o600)
}

// Kubectl runs the built kubectl with kubeconfig and returns its output
// (stdout and stderr together, which is what a person would see).
func (c *Cluster) Kubectl(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	return c.KubectlIn(ctx, kubeconfig, nil, args...)
}

// KubectlIn is Kubectl with stdin (a manifest for -f -).
func (c *Cluster) KubectlIn(ctx context.Context, kubeconfig string, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.Bin, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// RegisterNode creates a Node as a kubelet would (without a kubelet it
// stays NotReady, with the not-ready taint; that is expected).
func (c *Cluster) RegisterNode(ctx context.Context, name string) error {
	_, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{"kubernetes.io/hostname": name},
	}}, metav1.CreateOptions{})
	return err
}

// Condition returns the node's PIDPressureRisk condition, if set.
func (c *Cluster) Condition(ctx context.Context, node string) (corev1.NodeCondition, bool, error) {
	n, err := c.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return corev1.NodeCondition{}, false, err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == ConditionType {
			return cond, true, nil
		}
	}
	return corev1.NodeCondition{}, false, nil
}

// WaitCondition polls the node every 50 ms until its condition has
// status, and returns it.
func (c *Cluster) WaitCondition(ctx context.Context, node string, timeout time.Duration, status corev1.ConditionStatus) (corev1.NodeCondition, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond, ok, err := c.Condition(ctx, node); err == nil && ok && cond.Status == status {
			return cond, nil
		}
		select {
		case <-ctx.Done():
			return corev1.NodeCondition{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return corev1.NodeCondition{}, fmt.Errorf("node %s did not get %s=%s within %s", node, ConditionType, status, timeout)
}

// Events returns the Events about the node.
func (c *Cluster) Events(ctx context.Context, node string) ([]corev1.Event, error) {
	l, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + node})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// ConditionType is the condition the agent owns.
const ConditionType corev1.NodeConditionType = "PIDPressureRisk"
