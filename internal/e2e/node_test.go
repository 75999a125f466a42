package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pidpressure/pidpressure/internal/e2e/nodevm"
	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
	hosttest "github.com/pidpressure/pidpressure/internal/testenv"
)

// The real node's names, as the scenarios see them through the apiserver.
const (
	vmNode        = "vm-node"
	workloadImage = "pidpressure.test/workload:1"
	agentImage    = "docker.io/pidpressure/node-problem-detector:0.1.0"
)

// realNode is the node VM serving as a Kubernetes node of the control
// plane on this machine, and the channel to run commands in it.
type realNode struct {
	share  string
	seq    int
	stop   chan struct{}
	done   chan nodeOutcome
	booted time.Duration // QEMU's start to the Node's Ready
}

type nodeOutcome struct {
	res nodevm.Result
	err error
}

// bootNode starts kube-controller-manager and kube-scheduler beside the
// apiserver, makes the node's images (the sandbox and the workloads from
// testdata/node/workload.c, the agent from make image-layout), boots the
// node VM with containerd 2.4.2 and the kubelet v1.37.2 (make node-bins)
// as systemd units, and waits for its Node to be Ready. Everything is
// stopped and removed at the end of the test.
func bootNode(t *testing.T) *realNode {
	t.Helper()
	if _, err := exec.LookPath(nodevm.QEMU); err != nil {
		t.Skipf("%s is not installed (make nodevm-tools): %v", nodevm.QEMU, err)
	}
	image, bins, ctlBin := os.Getenv(nodevm.ImageEnv), os.Getenv("NODEVM_BINS"), os.Getenv(testenv.ControllersEnv)
	if image == "" || bins == "" || ctlBin == "" {
		if os.Getenv(hosttest.RequireEnv) != "" {
			t.Fatalf("%s, NODEVM_BINS and %s must be set (make test-e2e sets them)", nodevm.ImageEnv, testenv.ControllersEnv)
		}
		t.Skipf("%s, NODEVM_BINS and %s are not set: make test-e2e builds and sets them", nodevm.ImageEnv, testenv.ControllersEnv)
	}
	ctl, err := cluster.StartControllers(ctlBin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range ctl.Logs {
				if b, err := os.ReadFile(l); err == nil {
					t.Logf("%s (end):\n%s", filepath.Base(l), nodevm.Tail(string(b)))
				}
			}
		}
		_ = ctl.Stop()
	})

	files := map[string]string{"kubelet.conf": guestKubeconfig(t)}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "kubelet"} {
		data, err := os.ReadFile(filepath.Join(bins, b))
		if err != nil {
			t.Fatalf("%v (make node-bins)", err)
		}
		files[filepath.Join("bin", b)] = string(data)
	}
	for name, img := range nodeImages(t) {
		a, err := img.Archive()
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Join("images", name+".tar")] = string(a)
	}
	script, err := os.ReadFile(filepath.Join("testdata", "node", "run.sh"))
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
	n := &realNode{share: t.TempDir(), stop: make(chan struct{}), done: make(chan nodeOutcome, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	go func() {
		res, err := nodevm.Run(ctx, nodevm.Options{ImageDir: image, Script: string(script), Files: files, Timeout: 40 * time.Minute,
			MemoryMB: 3072, CPUs: nodevm.DefaultCPUs, BootCPUs: 1, Forward: []nodevm.Forward{{GuestPort: 6443, HostPort: port}}, Stop: n.stop, Share: n.share})
		n.done <- nodeOutcome{res, err}
	}()
	t.Cleanup(func() {
		n.shutdown(t)
		cancel()
		_ = cluster.Client.CoreV1().Nodes().Delete(context.Background(), vmNode, metav1.DeleteOptions{})
	})

	// The Node, Ready, as its kubelet reports it.
	waitCtx, waitCancel := context.WithTimeout(ctx, 8*time.Minute)
	defer waitCancel()
	for {
		if nd, err := cluster.Client.CoreV1().Nodes().Get(waitCtx, vmNode, metav1.GetOptions{}); err == nil && isReady(nd) {
			break
		}
		select {
		case o := <-n.done:
			n.done <- o
			t.Fatalf("the node VM ended before its Node was Ready (%v, exit %d):\n%s\n%s", o.err, o.res.ExitCode, o.res.Output, nodevm.Tail(o.res.Console))
		case <-waitCtx.Done():
			t.Fatalf("no Ready Node %s: %v\n%s", vmNode, waitCtx.Err(), n.output())
		case <-time.After(time.Second): // polling the apiserver
		}
	}
	n.booted = time.Since(start)
	t.Logf("Node %s Ready %.1f s after QEMU started", vmNode, n.booted.Seconds())
	return n
}

// shutdown tells the guest to stop and waits for it to power off.
func (n *realNode) shutdown(t *testing.T) {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	o := <-n.done
	n.done <- o
	t.Logf("the node VM's facts:\n%s", o.res.Output)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Errorf("the node VM: %v, exit %d\n%s", o.err, o.res.ExitCode, nodevm.Tail(o.res.Console))
	}
}

// output is what the guest script printed so far.
func (n *realNode) output() string {
	b, _ := os.ReadFile(filepath.Join(n.share, "out.log"))
	return string(b)
}

// exec runs script in the guest as root (bash) and returns its output; a
// non-zero exit or no answer within limit fails the test.
func (n *realNode) exec(t *testing.T, limit time.Duration, script string) string {
	t.Helper()
	out, rc, err := n.run(limit, script)
	if err != nil || rc != 0 {
		t.Fatalf("in the node: %v, exit %d:\n%s\n--- script:\n%s", err, rc, out, script)
	}
	return out
}

// run writes the command into the share for the guest's loop, and waits
// for its exit code.
func (n *realNode) run(limit time.Duration, script string) (string, int, error) {
	n.seq++
	dir := filepath.Join(n.share, "cmd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", -1, err
	}
	base := filepath.Join(dir, fmt.Sprintf("%03d", n.seq))
	if err := os.WriteFile(base+".new", []byte(script), 0o644); err != nil {
		return "", -1, err
	}
	if err := os.Rename(base+".new", base+".sh"); err != nil {
		return "", -1, err
	}
	deadline := time.Now().Add(limit)
	for {
		if rc, err := os.ReadFile(base + ".rc"); err == nil {
			out, _ := os.ReadFile(base + ".out")
			code, err := strconv.Atoi(strings.TrimSpace(string(rc)))
			return string(out), code, err
		}
		select {
		case o := <-n.done:
			n.done <- o
			err := o.err
			if err == nil {
				err = fmt.Errorf("it powered off, exit %d", o.res.ExitCode)
			}
			return "", -1, fmt.Errorf("the node VM ended: %w\n%s", err, nodevm.Tail(o.res.Console))
		case <-time.After(100 * time.Millisecond): // polling the share
		}
		if time.Now().After(deadline) {
			return "", -1, fmt.Errorf("no answer from the node within %s", limit)
		}
	}
}

// nodeImages are the images the node needs and no registry can give it:
// the sandbox (pause) and the workloads, both the static program
// testdata/node/workload.c, and the agent as the Dockerfile lays it out
// (make image-layout) over this machine's glibc and libsystemd, which the
// Dockerfile's runtime stage (Debian bookworm) also gives it.
func nodeImages(t *testing.T) map[string]nodevm.ContainerImage {
	t.Helper()
	workload := hosttest.CProgram(t, "", filepath.Join("testdata", "node", "workload.c"), "-static", "-pthread")
	small := t.TempDir()
	copyFile(t, workload, filepath.Join(small, "workload"))

	agent := t.TempDir()
	cmd := exec.Command("make", "-s", "--no-print-directory", "image-layout", "DEST="+agent)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image-layout: %v\n%s", err, out)
	}
	const libsystemd = "/lib/x86_64-linux-gnu/libsystemd.so.0"
	for _, lib := range append(sharedLibraries(t, filepath.Join(agent, "node-problem-detector"), libsystemd), libsystemd) {
		copyFile(t, lib, filepath.Join(agent, lib))
	}
	// The loader finds libsystemd (which sdjournal opens by name) through
	// its cache, as in the Debian image.
	if err := os.MkdirAll(filepath.Join(agent, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(agent, "etc", "ld.so.conf"), []byte("/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ldconfig", "-r", agent).CombinedOutput(); err != nil {
		t.Fatalf("ldconfig -r %s: %v\n%s", agent, err, out)
	}
	return map[string]nodevm.ContainerImage{
		"pause":    {Name: "pidpressure.test/pause:1", Root: small, Entrypoint: []string{"/workload", "pause"}},
		"workload": {Name: workloadImage, Root: small, Entrypoint: []string{"/workload"}},
		"agent":    {Name: agentImage, Root: agent, Entrypoint: []string{"/node-problem-detector"}},
	}
}

// copyFile copies the file src (following links) to dst, making its
// directory, executable as the images' files are.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// sharedLibraries are the files ldd says the programs load, the dynamic
// loader included, by the paths they are loaded from.
func sharedLibraries(t *testing.T, programs ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	var libs []string
	for _, p := range programs {
		out, err := exec.Command("ldd", p).CombinedOutput()
		if err != nil {
			t.Fatalf("ldd %s: %v\n%s", p, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			lib := ""
			switch {
			case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
				lib = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				lib = f[0]
			}
			if lib != "" && !seen[lib] {
				seen[lib] = true
				libs = append(libs, lib)
			}
		}
	}
	return libs
}

// guestKubeconfig is the admin's kubeconfig as the guest uses it: the
// apiserver at its forwarded address, which its certificate names.
func guestKubeconfig(t *testing.T) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cluster.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
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

// eventually polls check every half second until it holds, and fails the
// test with its last explanation after limit.
func eventually(t *testing.T, limit time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, why := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, limit, why)
		}
		time.Sleep(500 * time.Millisecond) // polling the apiserver or the node
	}
}
