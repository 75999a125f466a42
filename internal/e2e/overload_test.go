package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// The overload test's bounds: the load generator's service accounts (each
// a flow of its own, as many clients are in a real overload), its workers,
// and the most requests and the longest time it may run.
const (
	loadAccounts = 24
	loadWorkers  = 48
	loadRequests = 40000
	loadTime     = 2 * time.Minute
)

// TestOverload proves that the agent's condition lands while the
// apiserver is overloaded where its writes would otherwise be queued.
//
// An apiserver of its own, small on purpose (60 seats in all, where the
// default is 600, so that a bounded load on 2 cores can saturate it), with
// deploy/base installed: the agent's service account, RBAC, admission
// policy, and its FlowSchema and priority level. A load generator, 24
// service accounts outside kube-system, lists 300 ConfigMaps of 8 KiB from
// 48 workers over raw HTTP (client-go would retry a 429 and hide it):
// built-in API Priority and Fairness puts them in workload-low, where the
// agent's own service account would land without the shipped FlowSchema,
// as 24 flows. Once the apiserver's metrics show workload-low executing
// all it may and queueing the rest, the
// agent's node (a PID namespace of 500, as in TestIncident) is exhausted:
// the condition must be True on the Node within 3 s of the first failure,
// and the apiserver must have dispatched the agent's requests through the
// pidpressure priority level. A bystander in workload-low (a write of a
// ConfigMap) shows what the agent would have met there.
func TestOverload(t *testing.T) {
	journald.Ensure(t)
	ctx := context.Background()
	k, _ := render(t)
	c2, err := testenv.StartWith(cluster.Bin, map[string]string{"max-requests-inflight": "40", "max-mutating-requests-inflight": "20"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c2.Stop(); err != nil {
			t.Error(err)
		}
	})
	admin := func(stdin []byte, args ...string) string {
		t.Helper()
		out, err := c2.KubectlIn(ctx, c2.Admin, stdin, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	dir := t.TempDir()

	// The agent, as the DaemonSet runs it, with its pod's token.
	admin(k.base, "apply", "--server-side", "-f", "-")
	node := "overload-node"
	if err := c2.RegisterNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	admin([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"agent-o","namespace":"pidpressure"},
		"spec":{"nodeName":"`+node+`","serviceAccountName":"pidpressure","priorityClassName":"system-node-critical","containers":[{"name":"c","image":"pidpressure/node-problem-detector:0.1.0"}]}}`), "create", "-f", "-")
	agentKC := tokenKubeconfig(t, c2, dir, strings.TrimSpace(admin(nil, "create", "token", "pidpressure", "-n", "pidpressure", "--bound-object-kind", "Pod", "--bound-object-name", "agent-o")))
	a, err := testenv.StartAgent(testenv.AgentSpec{NPD: npdBin, Node: node, Kubeconfig: agentKC, APIServer: c2.URL(), Dir: filepath.Join(dir, "agent"), PIDMax: 500, Monitor: &testenv.Monitor{}})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, a)
	if _, err := c2.WaitCondition(ctx, node, 30*time.Second, corev1.ConditionFalse); err != nil {
		t.Fatalf("%v; agent log:\n%s", err, a.Tail())
	}

	// The load generator and a bystander: service accounts in their own
	// namespace, allowed to list and patch ConfigMaps.
	admin([]byte(`apiVersion: v1
kind: Namespace
metadata: {name: load}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bystander, namespace: load}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: load-configmaps}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [list, patch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: load-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: load-configmaps}
subjects: [{kind: Group, apiGroup: rbac.authorization.k8s.io, name: "system:serviceaccounts:load"}]
`), "apply", "--server-side", "-f", "-")
	pad := strings.Repeat("x", 8<<10)
	for i := range 300 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%03d", i), Namespace: "load"}, Data: map[string]string{"pad": pad}}
		if _, err := c2.Client.CoreV1().ConfigMaps("load").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	token := func(sa string) string {
		t.Helper()
		if _, err := c2.Client.CoreV1().ServiceAccounts("load").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		tr, err := c2.Client.CoreV1().ServiceAccounts("load").CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tokenKubeconfig(t, c2, dir, tr.Status.Token)
	}
	var loadClients []*httpClient
	for i := range loadAccounts {
		loadClients = append(loadClients, httpClientFor(t, token(fmt.Sprintf("loadgen-%02d", i))))
	}
	bystander := httpClientFor(t, token("bystander"))
	metricsClient := httpClientFor(t, c2.Admin)

	lctx, stopLoad := context.WithTimeout(ctx, loadTime)
	defer stopLoad()
	var sent, rejected, failed, ok atomic.Int64
	var wg sync.WaitGroup
	for w := range loadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc := loadClients[w%loadAccounts]
			for lctx.Err() == nil && sent.Add(1) <= loadRequests {
				code, err := lc.do(lctx, http.MethodGet, "/api/v1/configmaps", "")
				switch {
				case err != nil:
					failed.Add(1)
				case code == http.StatusTooManyRequests:
					rejected.Add(1)
				case code == http.StatusOK:
					ok.Add(1)
				default:
					failed.Add(1)
				}
			}
		}()
	}
	defer func() {
		stopLoad()
		wg.Wait()
		t.Logf("the load: %d requests, %d answered, %d rejected (429), %d cut off by its end or failed", min(sent.Load(), loadRequests), ok.Load(), rejected.Load(), failed.Load())
	}()

	// Saturated: workload-low executes all it may and queues the rest.
	var sat string
	for deadline := time.Now().Add(60 * time.Second); sat == ""; {
		m := apiserverMetrics(t, metricsClient)
		if q := m[`apiserver_flowcontrol_current_inqueue_requests{flow_schema="service-accounts",priority_level="workload-low"}`]; q > 0 {
			sat = fmt.Sprintf("%g requests queued; seats executing %g of a limit of %g; %g rejected so far", q,
				m[`apiserver_flowcontrol_current_executing_seats{flow_schema="service-accounts",priority_level="workload-low"}`],
				m[`apiserver_flowcontrol_current_limit_seats{priority_level="workload-low"}`], rejectedIn(m, "workload-low"))
		}
		if sat == "" && time.Now().After(deadline) {
			t.Fatalf("the load did not saturate workload-low within 60 s: %d requests sent", sent.Load())
		}
		time.Sleep(200 * time.Millisecond) // polling the apiserver's metrics
	}
	t.Logf("workload-low saturated: %s", sat)
	t0 := time.Now()
	code, err := bystander.do(ctx, http.MethodPatch, "/api/v1/namespaces/load/configmaps/load-000", `{"data":{"touched":"yes"}}`)
	t.Logf("a bystander's write in workload-low meanwhile: HTTP %d after %.2f s (%v)", code, time.Since(t0).Seconds(), err)

	// The incident, under the load.
	tag := fmt.Sprintf("ppoverload%d", os.Getpid())
	load, err := testenv.IncidentLoad(a.Init, tag, "")
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	cond, err := c2.WaitCondition(ctx, node, 60*time.Second, corev1.ConditionTrue)
	seen := time.Now()
	if err != nil {
		t.Fatalf("%v; agent log:\n%s", err, a.Tail())
	}
	first, err := firstFailure(tag)
	if err != nil {
		t.Fatal(err)
	}
	if lat := seen.Sub(first); lat > 3*time.Second {
		t.Errorf("under the load, the condition was True on the Node %.2f s after the first failure; want within 3 s", lat.Seconds())
	} else {
		t.Logf("under the load, the condition was True on the Node %.2f s after the first failure: %s %s", lat.Seconds(), cond.Reason, cond.Message)
	}
	if lctx.Err() != nil {
		t.Errorf("the load had stopped (%v) before the condition landed: the proof needs it running", lctx.Err())
	}
	m := apiserverMetrics(t, metricsClient)
	if q := m[`apiserver_flowcontrol_current_inqueue_requests{flow_schema="service-accounts",priority_level="workload-low"}`]; q == 0 {
		t.Errorf("workload-low no longer queued when the condition landed")
	}
	ours := m[`apiserver_flowcontrol_dispatched_requests_total{flow_schema="pidpressure",priority_level="pidpressure"}`]
	if ours == 0 {
		t.Errorf("the apiserver dispatched none of the agent's requests through the pidpressure priority level")
	}
	if r := rejectedIn(m, "pidpressure"); r > 0 {
		t.Errorf("the apiserver rejected %g of the agent's requests", r)
	}
	t.Logf("dispatched through pidpressure: %g requests, none rejected; workload-low rejected %g",
		ours, rejectedIn(m, "workload-low"))
}

// rejectedIn sums the requests the apiserver rejected in a priority level,
// for any reason (queue full, time out in queue, concurrency limit).
func rejectedIn(m map[string]float64, level string) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, "apiserver_flowcontrol_rejected_requests_total{") && strings.Contains(k, `priority_level="`+level+`"`) {
			n += v
		}
	}
	return n
}

// httpClient makes raw requests as one kubeconfig's user: no client-side
// rate limit and no retry, so that the apiserver's answers are seen as
// they are.
type httpClient struct {
	host string
	c    *http.Client
}

func httpClientFor(t *testing.T, kubeconfig string) *httpClient {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rest.TransportFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &httpClient{host: rc.Host, c: &http.Client{Transport: tr, Timeout: 70 * time.Second}}
}

func (h *httpClient) do(ctx context.Context, method, path, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.host+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// apiserverMetrics reads the apiserver's /metrics: each series' sample by
// its name and labels as exposed.
func apiserverMetrics(t *testing.T, h *httpClient) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.host+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "apiserver_flowcontrol_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[sortedLabels(l[:i])] = v
		}
	}
	return out
}

// sortedLabels writes a series name{a="x",b="y"} with its labels sorted by
// name (the keys the test looks up), whatever order the server wrote them
// in. Label values here hold no comma or quote.
func sortedLabels(series string) string {
	open := strings.IndexByte(series, '{')
	if open < 0 || !strings.HasSuffix(series, "}") {
		return series
	}
	labels := strings.Split(series[open+1:len(series)-1], ",")
	slices.Sort(labels)
	return series[:open] + "{" + strings.Join(labels, ",") + "}"
}
