package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pidpressure/pidpressure/internal/config"
	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
)

// tool finds helm, kustomize or promtool: $HELM, $KUSTOMIZE, $PROMTOOL
// (make test-e2e builds them from the module proxy), else PATH.
func tool(t testing.TB, name string) string {
	t.Helper()
	if p := os.Getenv(strings.ToUpper(name)); p != "" {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run make tools (it builds helm, kustomize and promtool into ~/.cache/pidpressure/bin) or set %s", name, strings.ToUpper(name))
	}
	return p
}

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.Bytes(), out)
	}
	return out
}

// rendered holds the objects of a rendering by kind/namespace/name.
type rendered map[string]map[string]any

func parse(t testing.TB, stream []byte) rendered {
	t.Helper()
	objs := rendered{}
	d := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	for {
		var o map[string]any
		if err := d.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if o == nil {
			continue
		}
		md, _ := o["metadata"].(map[string]any)
		key := fmt.Sprintf("%s/%v/%v", o["kind"], md["namespace"], md["name"])
		if _, dup := objs[key]; dup {
			t.Fatalf("%s rendered twice", key)
		}
		objs[key] = o
	}
	return objs
}

// monitorJSON is the monitor config inside a rendering's ConfigMap,
// decoded (Helm writes keys sorted, kustomize as in the file).
func monitorJSON(t testing.TB, objs rendered) map[string]any {
	t.Helper()
	cm := objs["ConfigMap/pidpressure/pidpressure-config"]
	if cm == nil {
		t.Fatal("no ConfigMap pidpressure-config")
	}
	raw := cm["data"].(map[string]any)["pid-pressure-monitor.json"].(string)
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("the ConfigMap's monitor config is not JSON: %v", err)
	}
	cm["data"] = "(compared decoded)"
	return m
}

type renderings struct{ base, prometheus, kmsg, ebpf []byte }

// render renders deploy/ with kustomize and Helm, lints the chart, and
// checks that both give the same objects.
func render(t testing.TB) (kustomize, helm renderings) {
	t.Helper()
	k, h := tool(t, "kustomize"), tool(t, "helm")
	chart := filepath.Join(root, "deploy", "helm", "pidpressure")
	run(t, h, "lint", "--strict", chart)
	run(t, h, "lint", "--strict", chart, "--set", "kmsg.enabled=true,prometheus.enabled=true")
	run(t, h, "lint", "--strict", chart, "--set", "ebpf.enabled=true")
	kustomize.base = run(t, k, "build", filepath.Join(root, "deploy", "base"))
	kustomize.prometheus = run(t, k, "build", filepath.Join(root, "deploy", "prometheus"))
	kustomize.kmsg = run(t, k, "build", filepath.Join(root, "deploy", "kmsg"))
	kustomize.ebpf = run(t, k, "build", filepath.Join(root, "deploy", "ebpf"))
	helm.base = run(t, h, "template", "pidpressure", chart, "--kube-version", "1.37.2", "--namespace", "pidpressure")
	helm.prometheus = run(t, h, "template", "pidpressure", chart, "--kube-version", "1.37.2", "--namespace", "pidpressure", "--set", "prometheus.enabled=true")
	helm.kmsg = run(t, h, "template", "pidpressure", chart, "--kube-version", "1.37.2", "--namespace", "pidpressure", "--set", "kmsg.enabled=true")
	helm.ebpf = run(t, h, "template", "pidpressure", chart, "--kube-version", "1.37.2", "--namespace", "pidpressure", "--set", "ebpf.enabled=true")
	return kustomize, helm
}

// TestDeployRenderings checks deploy/: the chart lints; kustomize and Helm
// render the same objects (the DaemonSet field by field); the monitor
// config in them is valid and differs from the embedded default only where
// a DaemonSet must.
func TestDeployRenderings(t *testing.T) {
	k, h := render(t)
	for _, c := range []struct {
		name string
		k, h []byte
	}{{"base", k.base, h.base}, {"prometheus", k.prometheus, h.prometheus}, {"kmsg", k.kmsg, h.kmsg}, {"ebpf", k.ebpf, h.ebpf}} {
		ko, ho := parse(t, c.k), parse(t, c.h)
		if len(ko) == 0 {
			t.Fatalf("%s: kustomize rendered nothing", c.name)
		}
		km, hm := monitorJSON(t, ko), monitorJSON(t, ho)
		if d := cmp.Diff(km, hm); d != "" {
			t.Errorf("%s: the monitor config differs (-kustomize +helm):\n%s", c.name, d)
		}
		if d := cmp.Diff(ko, ho); d != "" {
			t.Errorf("%s: kustomize and Helm render different objects (-kustomize +helm):\n%s", c.name, d)
		}
		if ko["DaemonSet/pidpressure/pidpressure"] == nil {
			t.Errorf("%s: no DaemonSet", c.name)
		}
	}

	// The deployed config is valid and is the default but for where the
	// host is mounted, the state directory, the metrics listener and kmsg.
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "base", "pid-pressure-monitor.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(bytes.NewReader(raw)); err != nil {
		t.Fatalf("deploy/base/pid-pressure-monitor.json: %v", err)
	}
	var deployed, def map[string]any
	_ = json.Unmarshal(raw, &deployed)
	rawDef, err := os.ReadFile(filepath.Join(root, "config", "pid-pressure-monitor.json"))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(rawDef, &def)
	def["hostRoot"], def["stateDir"], def["metricsAddress"] = "/host", "/var/lib/pidpressure", "0.0.0.0:20258"
	def["sources"].(map[string]any)["kmsg"].(map[string]any)["enabled"] = false
	def["sources"].(map[string]any)["ebpf"].(map[string]any)["mode"] = "off" // no capability for it in the base
	if d := cmp.Diff(def, deployed); d != "" {
		t.Errorf("deploy/base/pid-pressure-monitor.json drifted from config/pid-pressure-monitor.json (-expected +deployed):\n%s", d)
	}

	// What the DaemonSet must be (issue: deploy and operate).
	ds := parse(t, k.base)["DaemonSet/pidpressure/pidpressure"]
	b, _ := json.Marshal(ds)
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					HostPID           bool   `json:"hostPID"`
					PriorityClassName string `json:"priorityClassName"`
					SecurityContext   struct {
						Seccomp struct{ Type string } `json:"seccompProfile"`
					} `json:"securityContext"`
					Tolerations []map[string]string `json:"tolerations"`
					Containers  []struct {
						Env []struct {
							Name      string `json:"name"`
							ValueFrom struct {
								FieldRef struct{ FieldPath string } `json:"fieldRef"`
							} `json:"valueFrom"`
						} `json:"env"`
						Liveness struct {
							HTTPGet struct{ Path string } `json:"httpGet"`
						} `json:"livenessProbe"`
						Resources struct {
							Requests map[string]string `json:"requests"`
							Limits   map[string]string `json:"limits"`
						} `json:"resources"`
						SecurityContext struct {
							ReadOnlyRoot bool `json:"readOnlyRootFilesystem"`
							Caps         struct {
								Drop []string `json:"drop"`
								Add  []string `json:"add"`
							} `json:"capabilities"`
						} `json:"securityContext"`
						Mounts []struct {
							Path     string `json:"mountPath"`
							ReadOnly bool   `json:"readOnly"`
						} `json:"volumeMounts"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	ps := d.Spec.Template.Spec
	if !ps.HostPID || ps.PriorityClassName != "system-node-critical" || ps.SecurityContext.Seccomp.Type != "RuntimeDefault" ||
		len(ps.Tolerations) != 1 || ps.Tolerations[0]["operator"] != "Exists" || len(ps.Containers) != 1 {
		t.Errorf("DaemonSet pod spec: hostPID %v, priority %q, seccomp %q, tolerations %v", ps.HostPID, ps.PriorityClassName, ps.SecurityContext.Seccomp.Type, ps.Tolerations)
	}
	c := ps.Containers[0]
	if len(c.Env) != 1 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME does not come from the downward API: %+v", c.Env)
	}
	if c.Liveness.HTTPGet.Path != "/healthz" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("liveness %q, resources %+v", c.Liveness.HTTPGet.Path, c.Resources)
	}
	if !c.SecurityContext.ReadOnlyRoot || !cmp.Equal(c.SecurityContext.Caps.Drop, []string{"ALL"}) || len(c.SecurityContext.Caps.Add) != 0 {
		t.Errorf("container security: %+v", c.SecurityContext)
	}
	for _, m := range c.Mounts {
		if !m.ReadOnly && m.Path != "/var/lib/pidpressure" {
			t.Errorf("%s is mounted writable; only the state directory may be", m.Path)
		}
	}

	// The eBPF rendering adds CAP_BPF and CAP_PERFMON and nothing else:
	// the rest of every object is the base's, RBAC and admission included,
	// and its monitor config turns the counter to auto.
	base, withEBPF := parse(t, k.base), parse(t, k.ebpf)
	for key, o := range base {
		e := withEBPF[key]
		if key == "ConfigMap/pidpressure/pidpressure-config" {
			if m := monitorJSON(t, withEBPF); m["sources"].(map[string]any)["ebpf"].(map[string]any)["mode"] != "auto" {
				t.Errorf("ebpf: sources.ebpf = %v, want mode auto", m["sources"].(map[string]any)["ebpf"])
			}
			continue
		}
		if key == "DaemonSet/pidpressure/pidpressure" {
			caps := e["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["securityContext"].(map[string]any)["capabilities"].(map[string]any)
			if !cmp.Equal(caps["add"], []any{"BPF", "PERFMON"}) || !cmp.Equal(caps["drop"], []any{"ALL"}) {
				t.Errorf("ebpf: capabilities %v, want add [BPF PERFMON], drop [ALL]", caps)
			}
			delete(caps, "add")
		}
		if d := cmp.Diff(o, e); d != "" {
			t.Errorf("ebpf: %s differs from the base beyond the capabilities (-base +ebpf):\n%s", key, d)
		}
	}
	if len(withEBPF) != len(base) {
		t.Errorf("ebpf renders %d objects, the base %d", len(withEBPF), len(base))
	}
}

// TestDeployRBACAndAdmission applies both renderings with server-side
// dry-run, installs the base for real, and proves least privilege with
// the agent's own identity: a token for its service account bound to a Pod
// on node A (which carries the node's name, as the kubelet's projected
// token does). It may set PIDPressureRisk on node A, and the real agent
// running with that token does; it may not touch node B, Ready,
// PIDPressure or the rest of the status, nor read secrets.
func TestDeployRBACAndAdmission(t *testing.T) {
	ctx := context.Background()
	k, h := render(t)
	dir := t.TempDir()
	kubectl := func(kubeconfig string, stdin []byte, args ...string) (string, error) {
		return cluster.KubectlIn(ctx, kubeconfig, stdin, args...)
	}
	admin := func(stdin []byte, args ...string) string {
		t.Helper()
		out, err := kubectl(cluster.Admin, stdin, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// The Prometheus Operator's own CRDs, from its Go module, so that the
	// ServiceMonitor and PrometheusRule are checked by the real schema.
	for _, crd := range prometheusCRDs(t) {
		admin(nil, "apply", "--server-side", "-f", crd)
	}
	admin(nil, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	// A dry run creates nothing, so the namespaced objects need their
	// namespace to exist already.
	admin([]byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"pidpressure"}}`), "apply", "--server-side", "-f", "-")
	for name, stream := range map[string][]byte{"kustomize": k.prometheus, "helm": h.prometheus, "kustomize kmsg": k.kmsg, "helm kmsg": h.kmsg,
		"kustomize ebpf": k.ebpf, "helm ebpf": h.ebpf} {
		if out, err := kubectl(cluster.Admin, stream, "apply", "--server-side", "--dry-run=server", "-f", "-"); err != nil {
			t.Fatalf("%s rendering does not apply (server-side dry-run): %v\n%s", name, err, out)
		}
	}
	admin(k.base, "apply", "--server-side", "-f", "-")
	t.Cleanup(func() {
		// The pod below is bound to a node without a kubelet, which would
		// never confirm its end: it goes at once, so that the namespace can
		// be deleted for good (by the namespace controller of TestNode).
		_, _ = kubectl(cluster.Admin, nil, "delete", "pod", "agent-a", "-n", "pidpressure", "--ignore-not-found", "--grace-period=0", "--force")
		_, _ = kubectl(cluster.Admin, k.base, "delete", "--ignore-not-found", "--wait=false", "-f", "-")
	})

	// Two nodes as kubelets would leave them, each with kubelet's conditions.
	const kubeletConditions = `{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"},{"type":"PIDPressure","status":"False","reason":"KubeletHasSufficientPID","message":"kubelet has sufficient PID available"}]}}`
	for _, n := range []string{"rbac-node-a", "rbac-node-b"} {
		admin([]byte(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"`+n+`"}}`), "create", "-f", "-")
		admin(nil, "patch", "node", n, "--subresource=status", "--type=merge", "-p", kubeletConditions)
	}
	// The agent's pod, as the DaemonSet would make it on node A (the
	// Priority admission plugin accepts system-node-critical outside
	// kube-system).
	admin([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"agent-a","namespace":"pidpressure"},
		"spec":{"nodeName":"rbac-node-a","serviceAccountName":"pidpressure","priorityClassName":"system-node-critical","containers":[{"name":"c","image":"pidpressure/node-problem-detector:0.1.0"}]}}`), "create", "-f", "-")
	token := strings.TrimSpace(admin(nil, "create", "token", "pidpressure", "-n", "pidpressure", "--bound-object-kind", "Pod", "--bound-object-name", "agent-a"))
	agentKC := tokenKubeconfig(t, cluster, dir, token)
	who := admin(nil, "--kubeconfig", agentKC, "auth", "whoami", "-o", "json")
	if !strings.Contains(who, "system:serviceaccount:pidpressure:pidpressure") || !strings.Contains(who, "rbac-node-a") {
		t.Fatalf("the agent's token does not carry its node's name: %s", who)
	}

	// The agent's calls, made as NPD makes them: a strategic merge patch
	// of nodes/status with its conditions (no GET first, unlike kubectl).
	rc, err := clientcmd.BuildConfigFromFlags("", agentKC)
	if err != nil {
		t.Fatal(err)
	}
	as, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	condition := func(typ, status string) []byte {
		return []byte(`{"status":{"conditions":[{"type":"` + typ + `","status":"` + status + `","reason":"Test","message":"test","lastHeartbeatTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)
	}
	patchStatus := func(node string, patch []byte) error {
		_, err := as.CoreV1().Nodes().PatchStatus(ctx, node, patch)
		return err
	}
	// The policy is loaded asynchronously after it is created: retry the
	// first forbidden write until it is refused.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := patchStatus("rbac-node-b", condition("PIDPressureRisk", "True"))
		if err != nil {
			if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "only the status of its own Node (rbac-node-a)") {
				t.Errorf("patching another node was refused, but not by the policy: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent could set PIDPressureRisk on another node")
		}
		// It got through before the policy was loaded: put node B back as
		// the kubelet left it (a merge patch replaces the whole list).
		admin(nil, "patch", "node", "rbac-node-b", "--subresource=status", "--type=merge", "-p", kubeletConditions)
		time.Sleep(500 * time.Millisecond)
	}

	if err := patchStatus("rbac-node-a", condition("PIDPressureRisk", "True")); err != nil {
		t.Errorf("the agent cannot set PIDPressureRisk on its own node: %v", err)
	}
	checkFlowControl(ctx, t, rc, admin, "rbac-node-a")
	for _, c := range []struct {
		what string
		call func() error
		want string // in the refusal
	}{
		{"set Ready", func() error { return patchStatus("rbac-node-a", condition("Ready", "False")) }, "only the PIDPressureRisk condition"},
		{"set PIDPressure", func() error { return patchStatus("rbac-node-a", condition("PIDPressure", "True")) }, "only the PIDPressureRisk condition"},
		{"change capacity", func() error { return patchStatus("rbac-node-a", []byte(`{"status":{"capacity":{"pods":"1"}}}`)) }, "only the PIDPressureRisk condition"},
		{"label its node", func() error {
			_, err := as.CoreV1().Nodes().Patch(ctx, "rbac-node-a", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}, "forbidden"},
		{"delete its node", func() error { return as.CoreV1().Nodes().Delete(ctx, "rbac-node-a", metav1.DeleteOptions{}) }, "forbidden"},
		{"read secrets", func() error { _, err := as.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); return err }, "forbidden"},
		{"read nodes/status with GET", func() error {
			_, err := as.CoreV1().RESTClient().Get().Resource("nodes").Name("rbac-node-a").SubResource("status").DoRaw(ctx)
			return err
		}, ""},
		{"list pods", func() error { _, err := as.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); return err }, "forbidden"},
	} {
		err := c.call()
		if err == nil || c.want != "" && !strings.Contains(err.Error(), c.want) {
			t.Errorf("the agent could %s (or was refused otherwise; want %q): %v", c.what, c.want, err)
		} else if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
			t.Errorf("%s: refused with %v, want 403 or an admission denial", c.what, err)
		}
	}
	// kubelet's conditions are as the kubelet left them.
	got := strings.Fields(admin(nil, "get", "node", "rbac-node-a", "-o", `jsonpath={range .status.conditions[*]}{.type}={.status} {end}`))
	slices.Sort(got)
	if !slices.Equal(got, []string{"PIDPressure=False", "PIDPressureRisk=True", "Ready=True"}) {
		t.Errorf("node A's conditions after the attempts: %q", got)
	}

	// The real agent, with nothing but that token: its condition and Events
	// reach node A.
	node := "rbac-node-a"
	a, err := testenv.StartAgent(testenv.AgentSpec{NPD: npdBin, Node: node, Kubeconfig: agentKC, APIServer: cluster.URL(), Dir: filepath.Join(dir, "agent")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Stop() }()
	deadline = time.Now().Add(30 * time.Second)
	for {
		c, ok, err := cluster.Condition(ctx, node)
		if err == nil && ok && c.Reason == "PIDHeadroomSufficient" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent with its least-privilege token did not set its condition (now %+v); log:\n%s", c, a.Tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if log, _ := os.ReadFile(a.Log); bytes.Contains(bytes.ToLower(log), []byte("forbidden")) {
		t.Errorf("the agent was refused something it needs:\n%s", a.Tail())
	}
}

// tokenKubeconfig writes a kubeconfig for the admin's cluster that
// authenticates with token.
func tokenKubeconfig(t *testing.T, c *testenv.Cluster, dir, token string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.ClientCertificate, ai.ClientCertificateData, ai.ClientKey, ai.ClientKeyData = "", nil, "", nil
		ai.Token = token
	}
	f, err := os.CreateTemp(dir, "kubeconfig-")
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	p := f.Name()
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// prometheusCRDs returns the ServiceMonitor and PrometheusRule CRDs from
// the Prometheus Operator's Go module (downloaded once into the module
// cache).
func prometheusCRDs(t *testing.T) []string {
	t.Helper()
	out := run(t, "go", "mod", "download", "-json", "github.com/prometheus-operator/prometheus-operator@v0.85.0")
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download: %v %s", err, out)
	}
	crds := filepath.Join(m.Dir, "example", "prometheus-operator-crd")
	return []string{filepath.Join(crds, "monitoring.coreos.com_servicemonitors.yaml"), filepath.Join(crds, "monitoring.coreos.com_prometheusrules.yaml")}
}

// checkFlowControl proves that the apiserver classifies the agent's writes
// of its node's status into the deployed FlowSchema and priority level (API
// Priority and Fairness names both, by UID, in every response's headers).
// The apiserver loads a new FlowSchema asynchronously: it polls.
func checkFlowControl(ctx context.Context, t *testing.T, rc *rest.Config, admin func([]byte, ...string) string, node string) {
	t.Helper()
	fs := strings.TrimSpace(admin(nil, "get", "flowschema", "pidpressure", "-o", "jsonpath={.metadata.uid}"))
	pl := strings.TrimSpace(admin(nil, "get", "prioritylevelconfiguration", "pidpressure", "-o", "jsonpath={.metadata.uid}"))
	tr, err := rest.TransportFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	body := `{"status":{"conditions":[{"type":"PIDPressureRisk","status":"True","reason":"Test","message":"flow control","lastHeartbeatTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`
	var gotFS, gotPL string
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, rc.Host+"/api/v1/nodes/"+node+"/status", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/strategic-merge-patch+json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		gotFS, gotPL = resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID"), resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID")
		if resp.StatusCode == http.StatusOK && gotFS == fs && gotPL == pl {
			t.Logf("the agent's status writes are classified into FlowSchema pidpressure (%s), priority level pidpressure (%s)", fs, pl)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's status write (HTTP %d) went to FlowSchema %q, priority level %q; want pidpressure's %q, %q", resp.StatusCode, gotFS, gotPL, fs, pl)
		}
		time.Sleep(200 * time.Millisecond) // polling the apiserver's classification
	}
}
