package signature

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The benchmark corpus: normal node log messages (kubelet, containerd,
// kernel, sshd, cron, systemd, CoreDNS) generated from templates written for
// this project, with one failure line from the signature corpus every
// 1000 lines (0.1 %). Deterministic: the same seed gives the same corpus.
const (
	benchLines     = 100_000
	benchMatchRate = 1000
)

var benchTemplates = []string{
	`I1124 10:%02d:%02d.%06d    3124 kubelet.go:2412] "SyncLoop (PLEG): event for pod" pod="%s/%s-%d" event={"ID":"%s","Type":"ContainerStarted","Data":"%s"}`,
	`I1124 10:%02d:%02d.%06d    3124 prober.go:107] "Probe succeeded" probeType="Readiness" pod="%s/%s-%d" podUID="%s" containerName="app" id="%s"`,
	`E1124 10:%02d:%02d.%06d    3124 pod_workers.go:1301] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"app\" with CrashLoopBackOff: \"back-off 5m0s restarting failed container=app pod=%s-%d_%s(%s)\"" pod="%s" podUID="%s"`,
	`W1124 10:%02d:%02d.%06d    3124 reflector.go:539] k8s.io/client-go/informers/factory.go:159: watch of *v1.Pod ended with: an error on the server ("unable to decode an event from the watch stream: http2: client connection lost") has prevented the request from succeeding pod=%s/%s-%d %s %s`,
	`I1124 10:%02d:%02d.%06d    3124 reconciler_common.go:258] "operationExecutor.MountVolume started for volume \"kube-api-access-%s\"" pod="%s/%s-%d" uid=%s %s`,
	`E1124 10:%02d:%02d.%06d    3124 kubelet_node_status.go:540] "Error updating node status, will retry" err="error getting node \"%s-%d\": Get \"https://10.0.0.1:6443/api/v1/nodes/%s?timeout=10s\": context deadline exceeded" id=%s %s`,
	`time="2024-11-24T10:%02d:%02d.%06dZ" level=info msg="StartContainer for \"%s\" returns successfully" namespace=%s pod=%s-%d id=%s %s`,
	`time="2024-11-24T10:%02d:%02d.%06dZ" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:%s-%d,Uid:%s,Namespace:%s,Attempt:0,} returns sandbox id \"%s\""`,
	`time="2024-11-24T10:%02d:%02d.%06dZ" level=warning msg="cleaning up after shim disconnected" id=%s namespace=k8s.io pod=%s/%s-%d %s`,
	`time="2024-11-24T10:%02d:%02d.%06dZ" level=info msg="PullImage \"registry.internal/%s/%s:1.%d\" returns image reference \"sha256:%s\"" %s`,
	`[%5d.%02d%04d] IPv6: ADDRCONF(NETDEV_CHANGE): veth%s: link becomes ready (pod %s/%s-%d) %s`,
	`[%5d.%02d%04d] cni0: port %s(veth%s) entered forwarding state %s %s-%d`,
	`[%5d.%02d%04d] audit: type=1400 audit(1732442531.%s): apparmor="DENIED" operation="open" profile="cri-containerd.apparmor.d" name="/proc/%s/%s-%d" pid=%s comm="%s"`,
	`[%5d.%02d%04d] EXT4-fs (nvme1n1): mounted filesystem %s r/w with ordered data mode. Quota mode: none. %s/%s-%d %s`,
	`Accepted publickey for core from 10.0.%02d.%02d port 5%04d ssh2: ED25519 SHA256:%s %s/%s-%d %s`,
	`pam_unix(sshd:session): session opened for user core(uid=1000) by (uid=0) %02d:%02d.%04d %s %s/%s-%d %s`,
	`Connection closed by authenticating user root 203.0.%02d.%02d port 4%04d [preauth] %s %s %s-%d %s`,
	`(root) CMD (/usr/lib/sysstat/sa1 1 1) %02d:%02d.%04d %s %s %s-%d %s`,
	`pam_unix(cron:session): session closed for user root %02d:%02d.%04d %s %s %s-%d %s`,
	`Started Session %02d%02d%04d of User core. %s %s %s-%d %s`,
	`run-containerd-runc-k8s.io-%02d%02d%04d-runc.%s.mount: Deactivated successfully. %s %s-%d %s`,
	`kubelet.service: Consumed %02dmin %02d.%04ds CPU time. %s %s %s-%d %s`,
	`[INFO] 10.0.%02d.%02d:5%04d - 4 "A IN %s.%s.svc.cluster.local. udp 57 false 512" NOERROR qr,aa,rd 106 0.000%d %s`,
}

var benchWords = []string{"default", "kube-system", "payments", "web", "api", "worker", "ingress-nginx", "monitoring", "batch", "cache"}

// buildBenchCorpus returns the corpus and its total size in bytes.
func buildBenchCorpus(tb testing.TB) ([]string, int) {
	tb.Helper()
	var positives []string
	for _, e := range loadCorpus(tb, "../../testdata/corpus/signatures.txt") {
		if e.want != "" {
			positives = append(positives, e.text)
		}
	}
	r := rand.New(rand.NewPCG(42, 2026))
	hex := func() string { return fmt.Sprintf("%016x%08x", r.Uint64(), r.Uint32()) }
	word := func() string { return benchWords[r.IntN(len(benchWords))] }
	lines := make([]string, 0, benchLines)
	size := 0
	for i := 0; i < benchLines; i++ {
		var l string
		if i%benchMatchRate == benchMatchRate/2 {
			l = positives[(i/benchMatchRate)%len(positives)]
		} else {
			tpl := benchTemplates[r.IntN(len(benchTemplates))]
			args := make([]any, 0, 12)
			args = append(args, r.IntN(60), r.IntN(60), r.IntN(1_000_000))
			for n := strings.Count(tpl, "%") - 3; n > 0; n-- {
				switch r.IntN(3) {
				case 0:
					args = append(args, word())
				case 1:
					args = append(args, hex())
				default:
					args = append(args, word()+"-"+hex()[:8])
				}
			}
			l = fmt.Sprintf(tpl, args...)
			l = strings.ReplaceAll(l, "%!d(string=", "(") // a %d given a word: keep the text readable
		}
		lines = append(lines, l)
		size += len(l)
	}
	return lines, size
}

// benchCorpus builds the corpus once per process; benchmarks share it.
func benchCorpus(tb testing.TB) ([]string, int) {
	benchCache.Lock()
	defer benchCache.Unlock()
	if benchCache.lines == nil {
		benchCache.lines, benchCache.size = buildBenchCorpus(tb)
	}
	return benchCache.lines, benchCache.size
}

var benchCache struct {
	sync.Mutex
	lines []string
	size  int
}

// TestBenchCorpus checks the benchmark input is what docs/benchmarks.md says.
func TestBenchCorpus(t *testing.T) {
	t.Parallel()
	lines, size := buildBenchCorpus(t)
	m := newTestMatcher(t)
	matches := 0
	for _, l := range lines {
		if _, ok := m.MatchString(l); ok {
			matches++
		}
	}
	if len(lines) != benchLines {
		t.Fatalf("%d lines, want %d", len(lines), benchLines)
	}
	// About 0.1 %: every planted failure, and no normal line.
	if want := benchLines / benchMatchRate; matches != want {
		t.Errorf("%d of %d lines match, want %d (0.1 %%)", matches, len(lines), want)
	}
	if avg := size / len(lines); avg < 80 || avg > 400 {
		t.Errorf("average line %d bytes, want a realistic 80–400", avg)
	}
}

// npdPatterns expresses the catalog as NPD system-log-monitor rules: one
// regexp per signature that must match to the end of the buffer.
func npdPatterns() []string {
	var out []string
	for _, r := range Builtin() {
		out = append(out, `(?i)(?:`+r.Pattern+`)[^\n]*`)
	}
	return out
}

// BenchmarkMatcher is the prefiltered matcher, one line per op.
func BenchmarkMatcher(b *testing.B) {
	lines, size := benchCorpus(b)
	m := newTestMatcher(b)
	b.SetBytes(int64(size / len(lines)))
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		if _, ok := m.MatchString(lines[i%len(lines)]); ok {
			hits++
		}
	}
	sinkInt = hits
}

// BenchmarkNPDBaseline does per line what Node Problem Detector v1.36.0's
// system log monitor does (pkg/systemlogmonitor/log_buffer.go): push the line
// into a 10-line ring buffer, and for every rule compile pattern+`\z` and
// match it against the buffered lines joined with newlines.
func BenchmarkNPDBaseline(b *testing.B) {
	lines, size := benchCorpus(b)
	patterns := npdPatterns()
	b.SetBytes(int64(size / len(lines)))
	const bufLines = 10
	ring := make([]string, bufLines)
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		ring[i%bufLines] = lines[i%len(lines)]
		cur := (i + 1) % bufLines
		joined := strings.Join(append(append([]string(nil), ring[cur:]...), ring[:cur]...), "\n")
		for _, p := range patterns {
			re := regexp.MustCompile(p + `\z`)
			if re.FindStringIndex(joined) != nil {
				hits++
				break
			}
		}
	}
	sinkInt = hits
}

// BenchmarkRegexpList is the second baseline: the same patterns compiled
// once and tried in order on each line.
func BenchmarkRegexpList(b *testing.B) {
	lines, size := benchCorpus(b)
	var res []*regexp.Regexp
	for _, r := range Builtin() {
		res = append(res, regexp.MustCompile(`(?i)`+r.Pattern))
	}
	b.SetBytes(int64(size / len(lines)))
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		l := lines[i%len(lines)]
		for _, re := range res {
			if re.MatchString(l) {
				hits++
				break
			}
		}
	}
	sinkInt = hits
}

// BenchmarkRatios times the matcher and both baselines over the same
// lines in this process and reports how many times faster the matcher is
// (higher is better). testing.Benchmark cannot be nested inside a running
// benchmark, so it times fixed loops itself: every corpus line through the
// matcher, and the first ratioLines lines through each baseline (the
// baselines are too slow for the whole corpus; the first lines are the same
// mix of templates and include a failure line).
func BenchmarkRatios(b *testing.B) {
	const ratioLines = 2000
	lines, _ := benchCorpus(b)
	m := newTestMatcher(b)
	var res []*regexp.Regexp
	for _, r := range Builtin() {
		res = append(res, regexp.MustCompile(`(?i)`+r.Pattern))
	}
	npd := npdPatterns()
	perLine := func(n int, f func(i int)) float64 {
		start := time.Now()
		for i := 0; i < n; i++ {
			f(i)
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	hits := 0
	for range b.N {
		matcherNs := perLine(len(lines), func(i int) {
			if _, ok := m.MatchString(lines[i]); ok {
				hits++
			}
		})
		listNs := perLine(ratioLines, func(i int) {
			for _, re := range res {
				if re.MatchString(lines[i]) {
					hits++
					break
				}
			}
		})
		ring := make([]string, 10)
		npdNs := perLine(ratioLines, func(i int) {
			ring[i%10] = lines[i]
			cur := (i + 1) % 10
			joined := strings.Join(append(append([]string(nil), ring[cur:]...), ring[:cur]...), "\n")
			for _, p := range npd {
				if regexp.MustCompile(p+`\z`).FindStringIndex(joined) != nil {
					hits++
					break
				}
			}
		})
		b.ReportMetric(npdNs/matcherNs, "x_vs_npd")
		b.ReportMetric(listNs/matcherNs, "x_vs_regexp_list")
		b.ReportMetric(matcherNs, "matcher_ns/line")
		b.ReportMetric(listNs, "regexp_list_ns/line")
		b.ReportMetric(npdNs, "npd_ns/line")
	}
	sinkInt = hits
}

var sinkInt int
