package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pidpressure/pidpressure/internal/e2e/nodevm"
	hosttest "github.com/pidpressure/pidpressure/internal/testenv"
)

// TestNodeJoins boots the node VM as a real Kubernetes node of the control
// plane on this machine: containerd 2.4.2 and the kubelet v1.37.2 (make
// node-bins) run as systemd units with the systemd cgroup driver, and the
// kubelet reaches the apiserver through the VM's one network device, whose
// only way out is the apiserver's port on this machine's 127.0.0.1. The
// Node must become Ready, with its Lease and the System Info of the real
// node (kernel, OS, container runtime, kubelet).
func TestNodeJoins(t *testing.T) {
	if _, err := exec.LookPath(nodevm.QEMU); err != nil {
		t.Skipf("%s is not installed (make nodevm-tools): %v", nodevm.QEMU, err)
	}
	image, bins := os.Getenv(nodevm.ImageEnv), os.Getenv("NODEVM_BINS")
	if image == "" || bins == "" {
		if os.Getenv(hosttest.RequireEnv) != "" {
			t.Fatalf("%s and NODEVM_BINS must be set (make test-e2e sets them)", nodevm.ImageEnv)
		}
		t.Skipf("%s and NODEVM_BINS are not set: make test-e2e builds and sets them", nodevm.ImageEnv)
	}
	const node = "vm-node"
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	t.Cleanup(func() { _ = cluster.Client.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })

	files := map[string]string{"kubelet.conf": guestKubeconfig(t)}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "kubelet"} {
		data, err := os.ReadFile(filepath.Join(bins, b))
		if err != nil {
			t.Fatalf("%v (make node-bins)", err)
		}
		files[filepath.Join("bin", b)] = string(data)
	}
	script, err := os.ReadFile(filepath.Join("testdata", "join", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	type outcome struct {
		res nodevm.Result
		err error
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() {
		res, err := nodevm.Run(ctx, nodevm.Options{ImageDir: image, Script: string(script), Files: files, Timeout: 11 * time.Minute,
			Forward: []nodevm.Forward{{GuestPort: 6443, HostPort: port}}, Stop: stop})
		done <- outcome{res, err}
	}()

	// The Node, Ready, as its kubelet reports it.
	var n *corev1.Node
	var ready time.Duration
	for n == nil || !isReady(n) {
		select {
		case o := <-done:
			t.Fatalf("the node VM ended before its Node was Ready (%v, exit %d):\n%s\n%s", o.err, o.res.ExitCode, o.res.Output, nodevm.Tail(o.res.Console))
		case <-ctx.Done():
			t.Fatalf("no Ready Node %s: %v", node, ctx.Err())
		case <-time.After(time.Second): // polling the apiserver
		}
		n, _ = cluster.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if n != nil && n.Name == "" {
			n = nil
		}
		ready = time.Since(start)
	}
	// Its Lease, which the kubelet creates once it has registered the Node.
	var lease *coordinationv1.Lease
	for deadline := time.Now().Add(90 * time.Second); ; {
		lease, err = cluster.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second) // polling the apiserver
	}
	close(stop)
	o := <-done
	t.Logf("Node %s Ready %.1f s after QEMU started; guest output:\n%s", node, ready.Seconds(), o.res.Output)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("the node VM: %v, exit %d\n%s", o.err, o.res.ExitCode, nodevm.Tail(o.res.Console))
	}
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != node {
		t.Errorf("the node's Lease: %+v, %v", lease, err)
	}
	info := n.Status.NodeInfo
	for what, ok := range map[string]bool{
		"kernel 6.12":       strings.HasPrefix(info.KernelVersion, "6.12."),
		"Debian 13":         strings.Contains(info.OSImage, "Debian GNU/Linux 13"),
		"containerd 2.4.2":  info.ContainerRuntimeVersion == "containerd://2.4.2",
		"kubelet v1.37.2":   info.KubeletVersion == "v1.37.2",
		"boot ID":           info.BootID != "",
		"address 10.0.2.15": hasAddress(n, "10.0.2.15"),
	} {
		if !ok {
			t.Errorf("System Info lacks %s: %+v, addresses %+v", what, info, n.Status.Addresses)
		}
	}
	facts := map[string]string{}
	for _, l := range strings.Split(o.res.Output, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			facts[k] = v
		}
	}
	if facts["stopped_by_host"] != "yes" || facts["kubelet_unit"] != "active" || facts["kubelet_cgroup"] != "/system.slice/kubelet.service" || facts["kubepods"] == "" {
		t.Errorf("the guest's kubelet: %v; want it active in /system.slice/kubelet.service and kubepods.slice made", facts)
	}
}

// guestKubeconfig is the admin's kubeconfig as the guest uses it: the
// apiserver at its forwarded address, its certificate checked for the name
// it was issued to.
func guestKubeconfig(t *testing.T) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cluster.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			t.Fatal(err)
		}
		c.TLSServerName = u.Hostname()
		c.Server = "https://" + nodevm.GuestAddr + ":6443"
	}
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hasAddress(n *corev1.Node, ip string) bool {
	for _, a := range n.Status.Addresses {
		if a.Address == ip {
			return true
		}
	}
	return false
}
