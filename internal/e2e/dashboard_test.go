package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/pidpressure/pidpressure/internal/e2e/testenv"
)

// dashboardPanel is what the tests read of a panel of
// deploy/grafana/pidpressure.json.
type dashboardPanel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) ([]byte, []dashboardPanel) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "pidpressure.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return raw, d.Panels
}

// TestDashboardSchema validates the dashboard against Grafana's own
// schema as the Grafana Foundation SDK carries it: strictly (an unknown or
// a missing required field is an error), each panel's options against its
// plugin's schema, and every panel has a query.
func TestDashboardSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw, panels := readDashboard(t)
	var d dashboard.Dashboard //nolint:staticcheck // the classic JSON model (schemaVersion 41) is what Grafana imports and its dashboard sidecar loads; dashboardv2 is the v2 API's format
	if err := schemaErr(d.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("deploy/grafana/pidpressure.json against Grafana's dashboard schema: %v", err)
	}
	if err := schemaErr(d.Validate()); err != nil {
		t.Fatalf("deploy/grafana/pidpressure.json: %v", err)
	}
	queries := 0
	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			queries++
		}
	}
	t.Logf("%d panels, %d queries", len(panels), queries)
}

// schemaErr is err unless it is the SDK's empty list of errors (which it
// returns, typed, when there are none).
func schemaErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// checkDashboard evaluates every query of the dashboard against the fleet
// test's Prometheus, with the node variable set to each of nodes in turn
// (and $__rate_interval to 1m, as Grafana sets it at this scrape interval),
// and fails for a query that returns no series for any of them within 30 s
// (the last of what the test did may need a scrape and an evaluation).
func checkDashboard(t *testing.T, p *testenv.Prometheus, nodes ...string) {
	t.Helper()
	_, panels := readDashboard(t)
	deadline := time.Now().Add(30 * time.Second)
	for _, pn := range panels {
		for _, q := range pn.Targets {
			for !dashboardQueryAnswers(t, p, pn.Title, q.Expr, nodes) {
				if time.Now().After(deadline) {
					t.Errorf("panel %q: no series for %s (nodes %v)", pn.Title, q.Expr, nodes)
					break
				}
				time.Sleep(time.Second)
			}
		}
	}
}

// dashboardQueryAnswers reports whether expr returns series for one of
// nodes (or at all, when it has no node variable).
func dashboardQueryAnswers(t *testing.T, p *testenv.Prometheus, panel, expr string, nodes []string) bool {
	t.Helper()
	for _, n := range nodes {
		s, err := p.Query(context.Background(), strings.NewReplacer("$node", n, "$__rate_interval", "1m").Replace(expr))
		if err != nil {
			t.Errorf("panel %q: %v", panel, err)
			return true
		}
		if len(s) > 0 {
			return true
		}
		if !strings.Contains(expr, "$node") {
			return false
		}
	}
	return false
}

// waitQuery polls q until it returns series (a scrape and an evaluation
// after what the test did), or fails after limit.
func waitQuery(t *testing.T, p *testenv.Prometheus, limit time.Duration, q string) []testenv.Sample {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s, err := p.Query(context.Background(), q)
		if err == nil && len(s) > 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no series for %s within %v (last error %v)", q, limit, err)
		}
		time.Sleep(time.Second)
	}
}

// TestDashboardManifests: the dashboard ships as a ConfigMap for Grafana's
// dashboard sidecar from kustomize (deploy/grafana) and Helm
// (grafana.enabled), both labelled grafana_dashboard: "1" and holding
// deploy/grafana/pidpressure.json as it is; the chart's copy of the file is
// the same file.
func TestDashboardManifests(t *testing.T) {
	raw, _ := readDashboard(t)
	chartCopy, err := os.ReadFile(filepath.Join(root, "deploy", "helm", "pidpressure", "dashboards", "pidpressure.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(chartCopy) != string(raw) {
		t.Fatal("deploy/helm/pidpressure/dashboards/pidpressure.json differs from deploy/grafana/pidpressure.json: copy it over")
	}
	k, h := tool(t, "kustomize"), tool(t, "helm")
	chart := filepath.Join(root, "deploy", "helm", "pidpressure")
	run(t, h, "lint", "--strict", chart, "--set", "grafana.enabled=true")
	for name, stream := range map[string][]byte{
		"kustomize": run(t, k, "build", filepath.Join(root, "deploy", "grafana")),
		"helm":      run(t, h, "template", "pidpressure", chart, "--kube-version", "1.37.2", "--namespace", "pidpressure", "--set", "grafana.enabled=true"),
	} {
		cm := parse(t, stream)["ConfigMap/pidpressure/pidpressure-grafana-dashboard"]
		if cm == nil {
			t.Errorf("%s: no ConfigMap pidpressure-grafana-dashboard", name)
			continue
		}
		if l := cm["metadata"].(map[string]any)["labels"].(map[string]any); l["grafana_dashboard"] != "1" {
			t.Errorf("%s: labels %v, want grafana_dashboard: \"1\"", name, l)
		}
		if got := cm["data"].(map[string]any)["pidpressure.json"]; got != strings.TrimSuffix(string(raw), "\n") && got != string(raw) {
			t.Errorf("%s: the ConfigMap's pidpressure.json is not deploy/grafana/pidpressure.json", name)
		}
	}
	if _, ok := parse(t, run(t, h, "template", "pidpressure", chart, "--kube-version", "1.37.2", "--namespace", "pidpressure"))["ConfigMap/pidpressure/pidpressure-grafana-dashboard"]; ok {
		t.Error("helm renders the dashboard's ConfigMap with grafana.enabled off")
	}
}
