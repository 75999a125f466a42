package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// TestPrometheusRules unit-tests the alerts as they ship: the rule groups
// of the PrometheusRule that kustomize (deploy/prometheus) and Helm
// (prometheus.enabled) render, with `promtool test rules` and the cases in
// testdata/prometheusrule_test.yaml. Every alert must have a case where it
// fires and one where it stays silent.
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool")
	k, h := render(t)
	tests, err := os.ReadFile(filepath.Join("testdata", "prometheusrule_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests []struct {
			Name  string `json:"name"`
			Cases []struct {
				Alert  string            `json:"alertname"`
				Alerts []json.RawMessage `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &suite); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range suite.Tests {
		for _, c := range tc.Cases {
			if len(c.Alerts) > 0 {
				fires[c.Alert] = true
			} else {
				silent[c.Alert] = true
			}
		}
	}

	for _, r := range []struct {
		name   string
		stream []byte
	}{{"kustomize", k.prometheus}, {"helm", h.prometheus}} {
		rule := parse(t, r.stream)["PrometheusRule/pidpressure/pidpressure"]
		if rule == nil {
			t.Fatalf("%s: no PrometheusRule pidpressure", r.name)
		}
		groups, _ := rule["spec"].(map[string]any)["groups"].([]any)
		var alerts []string
		for _, g := range groups {
			for _, rl := range g.(map[string]any)["rules"].([]any) {
				if a, ok := rl.(map[string]any)["alert"].(string); ok {
					alerts = append(alerts, a)
				}
			}
		}
		if len(alerts) == 0 {
			t.Fatalf("%s: the PrometheusRule has no alerts", r.name)
		}
		for _, a := range alerts {
			if !fires[a] || !silent[a] {
				t.Errorf("%s: alert %s needs a case where it fires (%v) and one where it is silent (%v) in testdata/prometheusrule_test.yaml", r.name, a, fires[a], silent[a])
			}
		}
		for a := range fires {
			if !slices.Contains(alerts, a) {
				t.Errorf("%s: testdata/prometheusrule_test.yaml tests %s, which is not a rule", r.name, a)
			}
		}

		dir := t.TempDir()
		rules, err := json.Marshal(map[string]any{"groups": groups}) // JSON is YAML
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), tests, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, "tests.yaml")).CombinedOutput()
		if err != nil {
			t.Errorf("%s: promtool test rules: %v\n%s", r.name, err, out)
		}
	}
}
