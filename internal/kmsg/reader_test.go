package kmsg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/testenv"
)

// Live tests against this machine's /dev/kmsg; skipped under -short and
// when the device cannot be opened.

func openLive(t *testing.T, opt Options) *Reader {
	t.Helper()
	if testing.Short() {
		t.Skip("live-host test (skipped under -short)")
	}
	r, err := Open("/dev/kmsg", opt)
	testenv.SkipIfNotSupported(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func writeKmsg(t *testing.T, msg string) {
	t.Helper()
	if err := os.WriteFile("/dev/kmsg", []byte(msg+"\n"), 0); err != nil {
		t.Skipf("cannot write /dev/kmsg: %v", err)
	}
}

// nextMatching reads until a line containing marker, within 5 s.
func nextMatching(t *testing.T, r *Reader, marker string) logline.Line {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		l, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v", marker, err)
		}
		if strings.Contains(l.Message, marker) {
			return l
		}
	}
}

// TestUserspaceWriteIsNotKernel: a record written to /dev/kmsg by a process
// (here: this test, as root) arrives with facility 1 and must not count as
// written by the kernel, even when it claims to be a kernel signature.
func TestUserspaceWriteIsNotKernel(t *testing.T) {
	r := openLive(t, Options{Start: StartAtEnd})
	marker := fmt.Sprintf("pptest-%d-%d", os.Getpid(), time.Now().UnixNano())
	// Ask for facility 0 ("<4>"): the kernel stores userspace writes as LOG_USER.
	writeKmsg(t, "<4>cgroup: fork rejected by pids controller in /"+marker)
	l := nextMatching(t, r, marker)
	if l.Facility != 1 || l.FromKernel() || l.Trust(true) != logline.TrustForged {
		t.Errorf("userspace record: facility %d, FromKernel %v, trust %s", l.Facility, l.FromKernel(), l.Trust(true))
	}
}

// TestRealKernelForkRejected exhausts a fresh pids cgroup so that the kernel
// itself logs "cgroup: fork rejected by pids controller in <path>" (once per
// cgroup), and reads it as a facility-0, kernel-trusted record.
func TestRealKernelForkRejected(t *testing.T) {
	r := openLive(t, Options{Start: StartAtEnd, Boot: time.Now().Add(-time.Hour)})
	hier := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(hier, "cgroup.procs")); err != nil {
		hier = "/sys/fs/cgroup"
	}
	name := fmt.Sprintf("pptest-kmsg-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	dir := filepath.Join(hier, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a pids cgroup: %v", err)
	}
	t.Cleanup(func() { removeCgroup(dir) })
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte("1"), 0o644); err != nil {
		t.Skipf("no pids controller: %v", err)
	}
	// A shell joins the cgroup (the limit does not stop migration), then forks.
	cmd := exec.Command("sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs; /bin/true", dir))
	_ = cmd.Run() // the fork of /bin/true is refused; the shell reports it and fails
	l := nextMatching(t, r, "fork rejected by pids controller in /"+name)
	if l.Facility != 0 || !l.FromKernel() || l.Trust(true) != logline.TrustKernel {
		t.Errorf("kernel record: facility %d, FromKernel %v, trust %s", l.Facility, l.FromKernel(), l.Trust(true))
	}
	if l.Time.IsZero() || l.Seq == 0 {
		t.Errorf("record time %v, seq %d", l.Time, l.Seq)
	}
}

func removeCgroup(dir string) {
	for i := 0; i < 40; i++ {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, p := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
		if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestResumeLosesAndRepeatsNothing reads part of a stream, closes the reader
// mid-stream (as a restart would), writes more, and resumes after the last
// sequence number handled: every record arrives exactly once.
func TestResumeLosesAndRepeatsNothing(t *testing.T) {
	r := openLive(t, Options{Start: StartAtEnd})
	marker := fmt.Sprintf("pptest-resume-%d-%d", os.Getpid(), time.Now().UnixNano())
	const total = 40
	for i := 0; i < total/2; i++ {
		writeKmsg(t, fmt.Sprintf("<14>%s %d", marker, i))
	}
	seen := map[int]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := func(r *Reader, until int) {
		for len(seen) < until {
			l, err := r.Next(ctx)
			if err != nil {
				t.Fatalf("after %d records: %v", len(seen), err)
			}
			if _, num, ok := strings.Cut(l.Message, marker+" "); ok {
				n, _ := strconv.Atoi(num)
				seen[n]++
			}
		}
	}
	read(r, 10) // stop mid-stream: half of what was written so far
	last := r.LastSeq()
	_ = r.Close()
	for i := total / 2; i < total; i++ {
		writeKmsg(t, fmt.Sprintf("<14>%s %d", marker, i))
	}
	r2 := openLive(t, Options{Start: StartAfterSeq, AfterSeq: last})
	read(r2, total)
	for i := 0; i < total; i++ {
		if seen[i] != 1 {
			t.Errorf("record %d read %d times", i, seen[i])
		}
	}
}

// TestOpenAtEndKnowsItsPosition: a reader opened at the end of the ring
// stands after the last record already there, before any new record
// arrives, so that a run that reads nothing still saves a real position.
func TestOpenAtEndKnowsItsPosition(t *testing.T) {
	marker := fmt.Sprintf("pptest-end-%d-%d", os.Getpid(), time.Now().UnixNano())
	writeKmsg(t, "<14>"+marker+" before")
	before := nextMatching(t, openLive(t, Options{Start: StartAtBeginning}), marker+" before").Seq
	r := openLive(t, Options{Start: StartAtEnd})
	o := r.Opened()
	if o.Empty || o.End < before || o.Start != StartAtEnd || o.SeqBeyondRing || r.LastSeq() != o.End {
		t.Fatalf("Opened() = %+v, LastSeq() = %d; want the end at or after %d (the record written before Open)", o, r.LastSeq(), before)
	}
	writeKmsg(t, "<14>"+marker+" after")
	// Whatever else is written meanwhile, nothing at or before the end is read.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		l, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l.Seq <= o.End {
			t.Fatalf("read record %d (%q) at or before the end %d", l.Seq, l.Message, o.End)
		}
		if strings.Contains(l.Message, marker+" after") {
			break
		}
	}
	if r.LastSeq() <= o.End {
		t.Errorf("LastSeq() = %d after a new record, want past %d", r.LastSeq(), o.End)
	}
}

// TestOpenAfterSeqBeyondRing: a resume point past the ring's last record (a
// state file that does not belong to this boot's kernel) starts at the end
// and says so, and new records are read; one inside the ring is honoured.
func TestOpenAfterSeqBeyondRing(t *testing.T) {
	end := openLive(t, Options{Start: StartAtEnd}).Opened().End
	r := openLive(t, Options{Start: StartAfterSeq, AfterSeq: end + 1<<40})
	if o := r.Opened(); !o.SeqBeyondRing || o.Start != StartAtEnd || o.End < end || r.LastSeq() != o.End {
		t.Fatalf("Opened() = %+v, LastSeq() = %d; want SeqBeyondRing, at the end (>= %d)", o, r.LastSeq(), end)
	}
	marker := fmt.Sprintf("pptest-beyond-%d-%d", os.Getpid(), time.Now().UnixNano())
	writeKmsg(t, "<14>"+marker)
	nextMatching(t, r, marker)

	in := openLive(t, Options{Start: StartAfterSeq, AfterSeq: end})
	if o := in.Opened(); o.SeqBeyondRing || o.Start != StartAfterSeq || in.LastSeq() != end {
		t.Errorf("resume inside the ring: Opened() = %+v, LastSeq() = %d; want StartAfterSeq at %d", o, in.LastSeq(), end)
	}
	if l := nextMatching(t, in, marker); l.Seq <= end {
		t.Errorf("resumed reader returned record %d, at or before %d", l.Seq, end)
	}
}

func TestCloseUnblocksNext(t *testing.T) {
	r := openLive(t, Options{Start: StartAtEnd, Poll: time.Hour})
	done := make(chan error, 1)
	go func() {
		// Other tests write to /dev/kmsg meanwhile: read until Close acts.
		for {
			if _, err := r.Next(context.Background()); err != nil {
				done <- err
				return
			}
		}
	}()
	testenv.WaitBlocked(t, "kmsg.(*Reader).Next", 5*time.Second)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
}

func TestContextEndsNext(t *testing.T) {
	r := openLive(t, Options{Start: StartAtEnd, Poll: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	for {
		_, err := r.Next(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return
		}
		if err != nil {
			t.Fatalf("Next = %v, want the context's error", err)
		}
	}
}

func TestOpenMissing(t *testing.T) {
	t.Parallel()
	_, err := Open(filepath.Join(t.TempDir(), "kmsg"), Options{})
	if !errors.Is(err, hostfs.ErrNotSupported) {
		t.Errorf("Open(missing) = %v, want ErrNotSupported", err)
	}
}

func TestBootTimeAndID(t *testing.T) {
	t.Parallel()
	root := hostfs.New("/")
	now := time.Now()
	boot, err := BootTime(root, now)
	if err != nil {
		t.Skip(err)
	}
	if !boot.Before(now) || now.Sub(boot) > 10*365*24*time.Hour {
		t.Errorf("boot %v is not before now %v", boot, now)
	}
	id, err := BootID(root)
	if err != nil || len(id) != 36 {
		t.Errorf("BootID = %q, %v", id, err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "proc", "uptime"), []byte("garbage 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := BootTime(hostfs.New(dir), now); err == nil {
		t.Error("BootTime accepted garbage uptime")
	}
}
