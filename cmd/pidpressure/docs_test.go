package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTroubleshootingShowsRealOutput keeps the diagnose output quoted in
// docs/troubleshooting.md equal to the golden output of TestDiagnoseGolden.
func TestTroubleshootingShowsRealOutput(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "diagnose", "pidmax-97pct.txt"))
	if err != nil {
		t.Fatal(err)
	}
	const prompt = "$ pidpressure diagnose --host-root testdata/hosts/pidmax-97pct\n"
	i := strings.Index(string(doc), prompt)
	if i < 0 {
		t.Fatal("docs/troubleshooting.md no longer shows pidpressure diagnose")
	}
	rest := string(doc)[i+len(prompt):]
	shown, _, found := strings.Cut(rest, "```")
	if !found {
		t.Fatal("docs/troubleshooting.md: the diagnose block is not closed")
	}
	if shown != string(golden) {
		t.Errorf("docs/troubleshooting.md shows diagnose output that differs from testdata/golden/diagnose/pidmax-97pct.txt; copy it again")
	}
}
