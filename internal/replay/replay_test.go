package replay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/pidpressure/pidpressure/internal/signature"
)

var update = flag.Bool("update", false, "rewrite golden files")

func matcher(t testing.TB) *signature.Matcher {
	t.Helper()
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func runString(t *testing.T, f Format, in string, opt Options, maxRecord int) (string, Summary) {
	t.Helper()
	d, err := NewDecoder(context.Background(), f, strings.NewReader(in), maxRecord, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s, err := Run(context.Background(), matcher(t), d, &out, opt)
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	return out.String(), s
}

func decodeResults(t *testing.T, out string) []Result {
	t.Helper()
	var rs []Result
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		var r Result
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output line %q is not a Result: %v", sc.Text(), err)
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestGolden replays every captured sample with --all, as jsonl and as the
// text table, and compares the output with testdata/golden/replay. Rewrite
// with -update.
func TestGolden(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "testdata")
	type sample struct {
		path   string
		format Format
	}
	var samples []sample
	captured, _ := filepath.Glob(filepath.Join(root, "captured", "*.txt"))
	for _, p := range captured {
		samples = append(samples, sample{p, FormatLines})
	}
	samples = append(samples,
		sample{filepath.Join(root, "corpus", "signatures.txt"), FormatLines},
		sample{filepath.Join(root, "journal", "capture-failures.json"), FormatJournalJSON},
		sample{filepath.Join(root, "journal", "capture-failures.export"), FormatJournalExport},
		sample{filepath.Join(root, "journal", "capture-binary.json"), FormatJournalJSON},
		sample{filepath.Join(root, "journal", "capture-binary.export"), FormatJournalExport},
		sample{filepath.Join(root, "kmsg", "pids-fork-rejected.txt"), FormatKmsg},
	)
	for _, s := range samples {
		for _, out := range []Output{OutputJSONL, OutputText} {
			name := filepath.Base(filepath.Dir(s.path)) + "-" + filepath.Base(s.path) + "." + map[Output]string{OutputJSONL: "jsonl", OutputText: "table"}[out]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				in, err := os.ReadFile(s.path)
				if err != nil {
					t.Fatal(err)
				}
				got, sum := runString(t, s.format, string(in), Options{Output: out, All: true}, 0)
				if out == OutputJSONL {
					if rs := decodeResults(t, got); len(rs) != sum.Records {
						t.Errorf("%d results for %d records", len(rs), sum.Records)
					}
				} else if n := strings.Count(got, "\n"); n != sum.Records+1 {
					t.Errorf("%d table lines for %d records and the header", n, sum.Records)
				}
				golden := filepath.Join(root, "golden", "replay", name)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("replay output differs from %s; run go test ./internal/replay -update and review the diff", golden)
				}
			})
		}
	}
}

// TestAllOneObjectPerRecord: with --all, exactly one object per record, in
// input order, numbered from 1.
func TestAllOneObjectPerRecord(t *testing.T) {
	t.Parallel()
	in := "hello\nbash: fork: retry: Resource temporarily unavailable\n\n\x00\xff binary\nlast line without newline"
	out, sum := runString(t, FormatLines, in, Options{Output: OutputJSONL, All: true}, 0)
	rs := decodeResults(t, out)
	if len(rs) != 5 || sum.Records != 5 {
		t.Fatalf("got %d results, summary %d records; want 5 and 5:\n%s", len(rs), sum.Records, out)
	}
	for i, r := range rs {
		if r.Line != i+1 {
			t.Errorf("result %d has line %d", i, r.Line)
		}
		if r.Match != (i == 1) {
			t.Errorf("line %d match = %v", r.Line, r.Match)
		}
	}
	if rs[1].Signature != "ShellForkRetry" || rs[1].Family != "shell" || rs[1].Class != "process" {
		t.Errorf("match = %+v", rs[1])
	}
}

func TestOnlyMatchesWithoutAll(t *testing.T) {
	t.Parallel()
	out, sum := runString(t, FormatLines, "a\nruntime/cgo: pthread_create failed: Resource temporarily unavailable\nb\n", Options{Output: OutputJSONL}, 0)
	rs := decodeResults(t, out)
	if len(rs) != 1 || rs[0].Line != 2 || sum.Records != 3 || sum.Matches != 1 {
		t.Errorf("results %+v, summary %+v", rs, sum)
	}
}

func TestHugeAndBinaryInput(t *testing.T) {
	t.Parallel()
	sig := "runtime: failed to create new OS thread (have 15 already; errno=11)"
	oneMiB := strings.Repeat("k", 1<<20) + " " + sig
	tooLong := strings.Repeat("z", 5<<20)
	garbage := make([]byte, 256<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.IntN(256))
	}
	in := oneMiB + "\n" + tooLong + "\n" + string(garbage) + "\n" + sig + "\n"
	out, sum := runString(t, FormatLines, in, Options{Output: OutputJSONL, All: true}, 0)
	rs := decodeResults(t, out)
	if sum.Skipped != 1 {
		t.Errorf("skipped = %d, want 1 (the 5 MiB line)", sum.Skipped)
	}
	if len(rs) != sum.Records {
		t.Fatalf("%d results for %d records", len(rs), sum.Records)
	}
	if !rs[0].Match || rs[0].Signature != "GoThreadCreateFailed" || rs[0].Fields.Threads != 15 {
		t.Errorf("1 MiB line: %+v", rs[0])
	}
	if len(rs[0].Message) > maxMessage {
		t.Errorf("echoed message is %d bytes, over %d", len(rs[0].Message), maxMessage)
	}
	if rs[1].Error == "" || !strings.Contains(rs[1].Error, "too long") || rs[1].Match {
		t.Errorf("5 MiB line: %+v", rs[1])
	}
	last := rs[len(rs)-1]
	if !last.Match || last.Line != sum.Records {
		t.Errorf("line after the garbage: %+v", last)
	}
}

func TestKmsgDecoder(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		"6,339,119291801,-;cgroup: fork rejected by pids controller in /kubepods.slice",
		" SUBSYSTEM=cgroup",
		"not a record",
		"",
		"12,340,119291900,-;kernel: cgroup: fork rejected by pids controller in /system.slice/kubelet.service",
		"6,341,119292000,-;" + strings.Repeat("x", 300),
		"14,342,119292001,-;bash: fork: retry: Resource temporarily unavailable",
	}, "\n")
	out, sum := runString(t, FormatKmsg, in, Options{Output: OutputJSONL, All: true}, 200)
	rs := decodeResults(t, out)
	if len(rs) != 5 || sum.Skipped != 2 {
		t.Fatalf("results %d, skipped %d; want 5 and 2:\n%s", len(rs), sum.Skipped, out)
	}
	if rs[0].Trust != "kernel" || rs[0].Fields.Cgroup != "/kubepods.slice" {
		t.Errorf("kernel record: %+v", rs[0])
	}
	if rs[1].Error == "" {
		t.Errorf("stray line not reported: %+v", rs[1])
	}
	if rs[2].Trust != "forged" {
		t.Errorf("facility 1 record claiming the kernel: trust %q, want forged", rs[2].Trust)
	}
	if rs[3].Error == "" || !strings.Contains(rs[3].Error, "too long") {
		t.Errorf("over-long record: %+v", rs[3])
	}
	if rs[4].Signature != "ShellForkRetry" || rs[4].Trust != "none" {
		t.Errorf("userspace record from kmsg: %+v", rs[4])
	}
}

func TestTextOutput(t *testing.T) {
	t.Parallel()
	out, _ := runString(t, FormatLines, "ok\nbash: fork: retry: Resource temporarily unavailable\n", Options{Output: OutputText}, 0)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "RECORD") || !strings.Contains(lines[1], "ShellForkRetry") {
		t.Errorf("text output:\n%s", out)
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for _, f := range Formats() {
		if got, err := ParseFormat(string(f)); err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	if _, err := ParseFormat("syslog"); err == nil || !strings.Contains(err.Error(), "journal-json") {
		t.Errorf("ParseFormat(syslog) error = %v, want one listing the formats", err)
	}
}

func FuzzReplay(f *testing.F) {
	f.Add(uint8(0), "bash: fork: retry: Resource temporarily unavailable\nx")
	f.Add(uint8(1), `{"MESSAGE":"fork failed: Resource temporarily unavailable","_PID":"3"}`)
	f.Add(uint8(2), "MESSAGE=a\n\nMESSAGE\n\x02\x00\x00\x00\x00\x00\x00\x00ab\n\n")
	f.Add(uint8(3), "6,1,1,-;cgroup: fork rejected by pids controller in /a\n SUBSYSTEM=x")
	m := matcher(f)
	f.Fuzz(func(t *testing.T, which uint8, in string) {
		format := Formats()[int(which)%len(Formats())]
		d, err := NewDecoder(context.Background(), format, strings.NewReader(in), 512, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		s, err := Run(context.Background(), m, d, &out, Options{Output: OutputJSONL, All: true})
		if err != nil {
			t.Fatalf("Run(%s) error = %v", format, err)
		}
		if n := strings.Count(out.String(), "\n"); n != s.Records {
			t.Fatalf("%s: %d output lines for %d records", format, n, s.Records)
		}
	})
}

// endless is an input that never ends a record (like /dev/zero): it fills
// every read with fill, calls cancel once after limit bytes, and ends
// (io.EOF) only 64 MiB after that, so that a reader that ignores the
// cancellation still terminates and is caught by the test.
type endless struct {
	fill   byte
	n      int
	limit  int
	cancel context.CancelFunc
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n >= e.limit+64<<20 {
		return 0, io.EOF
	}
	for i := range p {
		p[i] = e.fill
	}
	e.n += len(p)
	if e.n >= e.limit && e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
	return len(p), nil
}

// TestCancelInsideARecord: a context cancelled while a record is being read
// stops the run, in every format, instead of reading the endless record to
// its end (replay /dev/zero used to need SIGKILL).
func TestCancelInsideARecord(t *testing.T) {
	t.Parallel()
	for _, f := range Formats() {
		for _, fill := range []byte{0, 'x', '['} {
			t.Run(fmt.Sprintf("%s/%q", f, fill), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				in := &endless{fill: fill, limit: 8 << 20, cancel: cancel}
				d, err := NewDecoder(ctx, f, in, 0, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				_, err = Run(ctx, matcher(t), d, io.Discard, Options{Output: OutputJSONL, All: true})
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run() = %v, want context.Canceled", err)
				}
				if after := in.n - in.limit; after > 1<<20 {
					t.Errorf("read %d bytes after the cancellation", after)
				}
			})
		}
	}
}

// lazyLines yields n copies of line, generated as they are read, and
// records how much output w had received when half of them were read.
type lazyLines struct {
	line, pending []byte
	left, half    int
	w             *countingWriter
	seenAtHalf    int
}

func (l *lazyLines) Read(p []byte) (int, error) {
	if len(l.pending) == 0 {
		if l.left == 0 {
			return 0, io.EOF
		}
		if l.left == l.half {
			l.seenAtHalf = l.w.n
		}
		l.left--
		l.pending = l.line
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// TestTextStreams: the text table is written while the input is read, not
// held until the end (a million matches used to take 800 MB).
func TestTextStreams(t *testing.T) {
	t.Parallel()
	w := &countingWriter{}
	const n = 20000
	in := &lazyLines{line: []byte("bash: fork: retry: Resource temporarily unavailable\n"), left: n, half: n / 2, w: w}
	d, err := NewDecoder(context.Background(), FormatLines, in, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), matcher(t), d, w, Options{Output: OutputText})
	if err != nil || s.Matches != n {
		t.Fatalf("Run() = %+v, %v", s, err)
	}
	if in.seenAtHalf < w.n/4 {
		t.Errorf("%d of %d bytes of output were written when half the input was read; want the table to stream", in.seenAtHalf, w.n)
	}
}

// TestFieldsCgroupSanitized: the cgroup a kernel message names is the
// writer's text and is sanitized like the message.
func TestFieldsCgroupSanitized(t *testing.T) {
	t.Parallel()
	in := `{"MESSAGE":"cgroup: fork rejected by pids controller in /evil\u001b[2J\u0007x","_TRANSPORT":"kernel","SYSLOG_FACILITY":"0"}` + "\n"
	out, _ := runString(t, FormatJournalJSON, in, Options{Output: OutputJSONL}, 0)
	rs := decodeResults(t, out)
	if len(rs) != 1 || rs[0].Fields == nil {
		t.Fatalf("results %+v", rs)
	}
	if c := rs[0].Fields.Cgroup; strings.ContainsFunc(c, unicode.IsControl) || !strings.HasPrefix(c, "/evil") {
		t.Errorf("fields.cgroup = %q, want it without control characters", c)
	}
}

// TestExportCorruptLengthCounted: a corrupt binary length in journal-export
// is reported in place and counted as skipped, and the matches after it are
// still found.
func TestExportCorruptLengthCounted(t *testing.T) {
	t.Parallel()
	in := "MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\x7fjunk\n\nMESSAGE=bash: fork: retry: Resource temporarily unavailable\n_PID=7\n\n"
	out, sum := runString(t, FormatJournalExport, in, Options{Output: OutputJSONL, All: true}, 0)
	rs := decodeResults(t, out)
	if sum.Records != 2 || sum.Skipped != 1 || sum.Matches != 1 || len(rs) != 2 {
		t.Fatalf("summary %+v, results %+v; want 2 records, 1 skipped, 1 match", sum, rs)
	}
	if rs[0].Line != 1 || !strings.Contains(rs[0].Error, "corrupt length") || rs[1].Line != 2 || rs[1].Signature != "ShellForkRetry" {
		t.Errorf("results %+v", rs)
	}
}
