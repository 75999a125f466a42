package nodevm_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/e2e/nodevm"
	hosttest "github.com/pidpressure/pidpressure/internal/testenv"
)

// BinsEnv names the directory of the node's binaries (make node-bins).
const BinsEnv = "NODEVM_BINS"

// TestNodeVMRuntime boots the node VM with the node's own binaries, built
// from the module proxy (make node-bins): containerd 2.x, which the kubelets
// of Kubernetes 1.36 and later require and Debian does not ship, runs as
// the systemd unit containerd.service with the systemd cgroup driver and
// Debian's runc, with its CRI plugins loaded; the kubelet binary is the
// release the control plane runs. The first step of the real node.
func TestNodeVMRuntime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	image := bootable(ctx, t)
	bins := os.Getenv(BinsEnv)
	if bins == "" {
		if os.Getenv(hosttest.RequireEnv) != "" {
			t.Fatalf("%s is not set (make test-e2e sets it: make node-bins)", BinsEnv)
		}
		t.Skipf("%s is not set: make node-bins builds them", BinsEnv)
	}
	files := map[string]string{}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "kubelet"} {
		data, err := os.ReadFile(filepath.Join(bins, b))
		if err != nil {
			t.Fatalf("%v (make node-bins)", err)
		}
		files[filepath.Join("bin", b)] = string(data)
	}
	script, err := os.ReadFile(filepath.Join("testdata", "runtime", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := nodevm.Run(ctx, nodevm.Options{ImageDir: image, Script: string(script), Files: files, Timeout: 6 * time.Minute})
	if err != nil {
		t.Fatalf("running the runtime script in the node VM: %v", err)
	}
	t.Logf("boot to the first command %.1f s, power-off at %.1f s; guest output:\n%s", res.FirstCommand.Seconds(), res.Elapsed.Seconds(), res.Output)
	facts := parseFacts(res.Output)
	want(t, facts, "containerd_server", equals("v2.4.2"))
	want(t, facts, "containerd_unit", equals("active"))
	want(t, facts, "containerd_cgroup", equals("/system.slice/containerd.service"))
	want(t, facts, "kubelet", equals("Kubernetes v1.37.2"))
	want(t, facts, "runc", hasPrefix("runc version 1."))
	want(t, facts, "cni", hasWord("bridge"))
	want(t, facts, "cni", hasWord("host-local"))
	want(t, facts, "cni", hasWord("loopback"))
	// The CRI: the images and runtime plugins and the gRPC service, all ok.
	cri := first(facts, "containerd_cri")
	for _, p := range []string{"io.containerd.cri.v1/images:ok", "io.containerd.cri.v1/runtime:ok", "io.containerd.grpc.v1/cri:ok"} {
		if !strings.Contains(cri, p) {
			t.Errorf("containerd's CRI plugins %q lack %s", cri, p)
		}
	}
}
