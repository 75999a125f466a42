package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsReference holds docs/metrics.md to the collector: every
// series it describes is in the table, and the table lists no other
// pidpressure_ series.
func TestMetricsReference(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(pidpressure_[a-z_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	ch := make(chan *prometheus.Desc, 100)
	NewCollector(view{}).Describe(ch)
	close(ch)
	nameRe := regexp.MustCompile(`fqName: "([^"]+)"`)
	var described []string
	for d := range ch {
		m := nameRe.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		described = append(described, m[1])
		if !slices.Contains(documented, m[1]) {
			t.Errorf("docs/metrics.md does not document %s", m[1])
		}
	}
	for _, name := range documented {
		if !slices.Contains(described, name) {
			t.Errorf("docs/metrics.md documents %s, which the collector does not serve", name)
		}
	}
}
