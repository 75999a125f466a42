package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/kmsg"
	"github.com/pidpressure/pidpressure/internal/state"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tailKmsg runs "pidpressure tail" in this process on /dev/kmsg alone with
// the state directory; once the kmsg source has started it calls during, and
// stops the command when until holds for its output (or after 15 s). It
// returns the reports and the log.
func tailKmsg(t *testing.T, stateDir string, during func(), until func(out string) bool) (out, log string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tail", "-o", "jsonl", "--no-journal", "--no-pids-events", "--prewarm-threads", "1",
			"--state-dir", stateDir}, strings.NewReader(""), &stdout, &stderr)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stderr.String(), `msg="source started" source=kmsg`) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the kmsg source did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	during()
	for !until(stdout.String()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("tail exit %d:\n%s", code, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// reported counts the kmsg reports whose message contains s.
func reported(t *testing.T, out, s string) int {
	t.Helper()
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if msg, _ := m["message"].(string); m["source"] == "kmsg" && strings.Contains(msg, s) {
			n++
		}
	}
	return n
}

// kmsgSeqOf returns the sequence number of the record of /dev/kmsg that
// contains s.
func kmsgSeqOf(t *testing.T, s string) uint64 {
	t.Helper()
	r, err := kmsg.Open("/dev/kmsg", kmsg.Options{Start: kmsg.StartAtBeginning, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		l, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("looking for %q in /dev/kmsg: %v", s, err)
		}
		if strings.Contains(l.Message, s) {
			return l.Seq
		}
	}
}

// TestTailKmsgPositionAcrossRestarts runs "pidpressure tail --state-dir"
// on this machine's /dev/kmsg several times. A run that reads no record
// saves where it stood (the end of the ring when it started), so the next
// run reports a record written in between exactly once and replays nothing
// older; a saved position beyond the ring of this boot resumes at the end,
// with a log line, instead of never reading kmsg again.
func TestTailKmsgPositionAcrossRestarts(t *testing.T) {
	skipLive(t)
	if r, err := kmsg.Open("/dev/kmsg", kmsg.Options{}); err != nil {
		t.Skipf("no readable /dev/kmsg: %v", err)
	} else {
		_ = r.Close()
	}
	mark := fmt.Sprintf("pptest-kmsgpos-%d-%d", os.Getpid(), time.Now().UnixNano())
	line := func(what string) string {
		return "<12>bash: fork: retry: Resource temporarily unavailable " + mark + " " + what
	}
	// An old failure, in the ring before any run: never to be reported.
	writeKmsgLine(t, line("old"))
	oldSeq := kmsgSeqOf(t, mark+" old")
	stateDir := t.TempDir()
	store := state.NewStore(stateDir)
	nothing := func() {}

	// 1. First start: at the end of the ring. Nothing is read.
	out, log := tailKmsg(t, stateDir, nothing, func(string) bool { return true })
	if n := reported(t, out, mark); n != 0 {
		t.Errorf("first run reported %d of this test's records, want 0 (it starts at the end)\n%s", n, out)
	}
	st, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.Kmsg.BootID == "" || st.Kmsg.Seq < oldSeq {
		t.Fatalf("after a quiet run the state holds kmsg %+v, want this boot and a seq at or after %d (the record before the run)\n%s", st.Kmsg, oldSeq, log)
	}

	// 2. A failure between the runs is reported once; the old one is not.
	writeKmsgLine(t, line("between"))
	out, log = tailKmsg(t, stateDir, nothing, func(out string) bool { return strings.Contains(out, mark+" between") })
	if n := reported(t, out, mark+" between"); n != 1 {
		t.Errorf("the record written between runs was reported %d times, want 1\n%s\n%s", n, out, log)
	}
	if n := reported(t, out, mark+" old"); n != 0 {
		t.Errorf("the record written before the first run was replayed %d times\n%s", n, out)
	}

	// 3. A saved sequence number beyond this boot's ring: resume at the
	// end, say so, and keep reading.
	st, err = store.Load()
	if err != nil {
		t.Fatal(err)
	}
	st.Kmsg.Seq += 1 << 40
	if err := store.Save(st); err != nil {
		t.Fatal(err)
	}
	out, log = tailKmsg(t, stateDir, func() { writeKmsgLine(t, line("after")) },
		func(out string) bool { return strings.Contains(out, mark+" after") })
	if n := reported(t, out, mark+" after"); n != 1 {
		t.Errorf("with a saved seq beyond the ring, a new record was reported %d times, want 1\n%s", n, log)
	}
	if n := reported(t, out, mark+" between") + reported(t, out, mark+" old"); n != 0 {
		t.Errorf("with a saved seq beyond the ring, %d old records were replayed\n%s", n, out)
	}
	if !strings.Contains(log, "beyond") {
		t.Errorf("no log line says the saved position was beyond the ring:\n%s", log)
	}
	if st, err = store.Load(); err != nil || st.Kmsg.Seq >= 1<<40 {
		t.Errorf("after resuming at the end the state holds kmsg %+v (%v), want the real position", st.Kmsg, err)
	}
}
