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
	// Which failing program the condition names depends on which failure
	// was read first (a shell's fork or a Go program's thread).
	describeWho = regexp.MustCompile(`[\w.-]+ \(pid \d+(?:, [^)]*)?\) cannot create (?:processes|threads)`)
	// The kernel's count leads a node-level message where the eBPF counter
	// attaches (TestIncident asserts it there); a failure read from a log
	// line first has none yet.
	describeCounted = regexp.MustCompile(`the kernel counted \d+ refused creations?; `)
)

// normalize masks times, UIDs, numbers, the failing process, the kernel's
// count and the list of top consumers, and collapses the column padding, which follows the
// widest cell.
func normalize(line string) string {
	line = describeConsumers.ReplaceAllString(line, "; top consumers: <consumers>")
	line = describeWho.ReplaceAllString(line, "<process> cannot create <tasks>")
	line = describeCounted.ReplaceAllString(line, "")
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

// TestNormalizeMasksWhatVaries: the condition names whichever failure was
// read first — a shell's fork or a Go program's thread — with numbers and
// consumers of the moment; the doc example still matches.
func TestNormalizeMasksWhatVaries(t *testing.T) {
	t.Parallel()
	doc := "  PIDPressureRisk   True    Mon, 07 Dec 2026 14:39:29 +0000   Mon, 07 Dec 2026 14:39:29 +0000   PIDExhausted   bash (pid 586) cannot create processes: node tasks 499 of 499 usable (100%), binding limit kernel.pid_max=500; raise kernel.pid_max (e.g. 4194304); top consumers: sleep (415 processes) 415 tasks"
	run := "  PIDPressureRisk   True    Tue, 08 Dec 2026 01:02:03 +0000   Tue, 08 Dec 2026 01:02:03 +0000   PIDExhausted   gothreads (pid 19136) cannot create threads: node tasks 454 of 467 usable (97%), binding limit kernel.pid_max=500; raise kernel.pid_max (e.g. 4194304); top consumers: node-problem-de (pid 2) 22 tasks"
	if normalize(doc) != normalize(run) {
		t.Errorf("normalize differs:\n doc %q\n run %q", normalize(doc), normalize(run))
	}
	other := strings.Replace(run, "kernel.pid_max=500", "kernel.threads-max=500", 1)
	if normalize(doc) == normalize(other) {
		t.Error("normalize masks the binding limit too")
	}
}
