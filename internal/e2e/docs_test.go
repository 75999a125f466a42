package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The parts of kubectl's output that change from run to run.
var (
	describeTime   = regexp.MustCompile(`[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}`)
	describeNumber = regexp.MustCompile(`\d+(\.\d+)?`)
	describeHex    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	// The top consumers end a node-level message; who they are depends on
	// the moment of the census (which programs of the test had started).
	describeConsumers = regexp.MustCompile(`; top consumers: .*$`)
)

// normalize masks times, UIDs, numbers and the list of top consumers, and
// collapses the column padding, which follows the widest cell.
func normalize(line string) string {
	line = describeConsumers.ReplaceAllString(line, "; top consumers: <consumers>")
	line = describeTime.ReplaceAllString(line, "<time>")
	line = describeHex.ReplaceAllString(line, "<uid>")
	line = describeNumber.ReplaceAllString(line, "N")
	return strings.Join(strings.Fields(line), " ")
}

// checkDocExamples finds the examples in docs/ that show
// `$ kubectl describe node <node>` and checks that every line of each still
// appears in out, the output of that command in this run.
func checkDocExamples(t *testing.T, node, out string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		have[normalize(l)] = true
	}
	prompt := "$ kubectl describe node " + node
	found := 0
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".md") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		in := false
		for n := 1; sc.Scan(); n++ {
			l := sc.Text()
			switch {
			case l == prompt:
				in = true
				found++
			case in && strings.HasPrefix(l, "```"):
				in = false
			case in && !have[normalize(l)]:
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d shows a line kubectl describe node no longer prints:\n  %s", rel, n, l)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d doc example(s) of kubectl describe node %s checked", found, node)
}
