//go:build cgo

package journal

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
	"github.com/pidpressure/pidpressure/internal/signature"
	"github.com/pidpressure/pidpressure/internal/testenv"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

func TestMain(m *testing.M) {
	if opts := os.Getenv(openEnv); opts != "" {
		os.Exit(openAsChild(opts))
	}
	code := m.Run()
	journald.Release()
	os.Exit(code)
}

func openSource(t *testing.T, opt LiveOptions) *LiveReader {
	t.Helper()
	journald.Ensure(t)
	s, err := OpenLive(opt)
	testenv.SkipIfNotSupported(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func marker(t *testing.T) string {
	return fmt.Sprintf("pptest-%s-%d-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid(), time.Now().UnixNano()%1e9)
}

// collect reads until want lines containing mark have arrived (or 10 s).
func collect(t *testing.T, s *LiveReader, mark string, want int) []logline.Line {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []logline.Line
	for len(got) < want {
		l, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d lines: %v", len(got), want, err)
		}
		if strings.Contains(l.Message, mark) {
			got = append(got, l)
		}
	}
	return got
}

func TestSourceFollowsWithTrustedFields(t *testing.T) {
	s := openSource(t, LiveOptions{})
	mark := marker(t)
	journald.Cat(t, "pptest", mark+" one", mark+" two")
	got := collect(t, s, mark, 2)
	for _, l := range got {
		if l.Source != logline.SourceJournal || l.Origin.PID <= 0 || l.Origin.UID != 0 || l.Origin.Transport != "stdout" || l.Time.IsZero() {
			t.Errorf("line %q: origin %+v time %v", l.Message, l.Origin, l.Time)
		}
	}
	if got[0].Message != mark+" one" || got[1].Message != mark+" two" {
		t.Errorf("order: %q, %q", got[0].Message, got[1].Message)
	}
}

// TestForgedKubeletLine: a non-root user's "kubelet" line carries its real
// UID and no unit: it is attributed to the user, not to kubelet.
func TestForgedKubeletLine(t *testing.T) {
	s := openSource(t, LiveOptions{})
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	mark := marker(t)
	msg := "runtime: failed to create new OS thread (have 15 already; errno=11) " + mark
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"logger", "-u", "/run/systemd/journal/dev-log", "-t", "kubelet", msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logger: %v: %s", err, out)
	}
	l := collect(t, s, mark, 1)[0]
	if l.Origin.UID != 65534 || l.Origin.Unit != "" || l.Origin.Comm == "kubelet" {
		t.Errorf("forged line origin = %+v, want UID 65534, no unit", l.Origin)
	}
	m, err := signature.NewDefault()
	if err != nil {
		t.Fatal(err)
	}
	h, ok := m.Match(l)
	if !ok || h.Signature != "GoThreadCreateFailed" || h.Trust != logline.TrustAttributed {
		t.Errorf("match = %+v, %v", h, ok)
	}
}

// TestUnitAttributedFailure runs a real Go program that exhausts a pids
// cgroup standing in for kubelet.service (the unified hierarchy decides
// journald's _SYSTEMD_UNIT; the v1 pids hierarchy sets the limit), logging
// through journald: the failure arrives attributed to kubelet.service.
func TestUnitAttributedFailure(t *testing.T) {
	s := openSource(t, LiveOptions{})
	unified, pids := "/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(unified, "cgroup.procs")); err != nil {
		t.Skip("no cgroup2 hierarchy at /sys/fs/cgroup/unified")
	}
	if _, err := os.Stat(filepath.Join(pids, "cgroup.procs")); err != nil {
		t.Skip("no cgroup v1 pids hierarchy")
	}
	bin := buildThreadBomb(t)
	u := filepath.Join(unified, "system.slice", "kubelet.service")
	p := filepath.Join(pids, "system.slice", "kubelet.service")
	for _, d := range []string{u, p} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeCgroupTree(d) })
	}
	if err := os.WriteFile(filepath.Join(p, "pids.max"), []byte("12"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("echo $$ > %s/cgroup.procs; echo $$ > %s/cgroup.procs; exec systemd-cat -t kubelet %s", u, p, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, "sh", "-c", script).Run() // it crashes: that is the point
	got := collectMatch(t, s, func(l logline.Line) bool {
		return strings.HasPrefix(l.Message, "runtime: failed to create new OS thread") && l.Origin.Unit == "kubelet.service"
	})
	if got.Origin.Cgroup != "/system.slice/kubelet.service" || got.Origin.UID != 0 {
		t.Errorf("origin = %+v", got.Origin)
	}
}

func collectMatch(t *testing.T, s *LiveReader, ok func(logline.Line) bool) logline.Line {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		l, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for the line: %v", err)
		}
		if ok(l) {
			return l
		}
	}
}

// buildThreadBomb builds the Go program of testdata/captured/src/gothreads.go.
func buildThreadBomb(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "gothreads")
	src, err := filepath.Abs(filepath.Join("..", "..", "testdata", "captured", "src", "gothreads.go"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the thread bomb: %v\n%s", err, b)
	}
	return out
}

func removeCgroupTree(dir string) {
	for i := 0; i < 40; i++ {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, p := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
		if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
			_ = os.Remove(filepath.Dir(dir)) // system.slice, if we made it and it is empty
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRestartLosesAndRepeatsNothing: close the source mid-stream, write
// more, reopen at the saved cursor: every entry is read exactly once.
func TestRestartLosesAndRepeatsNothing(t *testing.T) {
	s := openSource(t, LiveOptions{})
	mark := marker(t)
	var lines []string
	for i := 0; i < 30; i++ {
		lines = append(lines, fmt.Sprintf("%s %d", mark, i))
	}
	journald.Cat(t, "pptest", lines...)
	seen := map[string]int{}
	for _, l := range collect(t, s, mark, 12) {
		seen[l.Message]++
	}
	cursor, err := s.Cursor()
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	var more []string
	for i := 30; i < 50; i++ {
		more = append(more, fmt.Sprintf("%s %d", mark, i))
	}
	journald.Cat(t, "pptest", more...)
	s2 := openSource(t, LiveOptions{Cursor: cursor})
	for _, l := range collect(t, s2, mark, 50-12) {
		seen[l.Message]++
	}
	for i := 0; i < 50; i++ {
		if n := seen[fmt.Sprintf("%s %d", mark, i)]; n != 1 {
			t.Errorf("entry %d read %d times", i, n)
		}
	}
	if s2.Stats().CursorLost {
		t.Error("cursor reported lost")
	}
}

// TestRotationUnderTheReader rotates the journal files while following.
func TestRotationUnderTheReader(t *testing.T) {
	s := openSource(t, LiveOptions{})
	mark := marker(t)
	journald.Cat(t, "pptest", mark+" before")
	collect(t, s, mark, 1)
	journald.Rotate(t)
	var lines []string
	for i := 0; i < 20; i++ {
		lines = append(lines, fmt.Sprintf("%s after %d", mark, i))
	}
	journald.Cat(t, "pptest", lines...)
	got := collect(t, s, mark, 20)
	for i, l := range got {
		if want := fmt.Sprintf("%s after %d", mark, i); l.Message != want {
			t.Errorf("line %d = %q, want %q", i, l.Message, want)
		}
	}
}

func TestSourceMissingDir(t *testing.T) {
	_, err := OpenLive(LiveOptions{Dir: filepath.Join(t.TempDir(), "nope")})
	if !errors.Is(err, hostfs.ErrNotSupported) {
		t.Errorf("OpenLive(missing dir) = %v, want ErrNotSupported", err)
	}
}

func TestCloseUnblocksNext(t *testing.T) {
	s := openSource(t, LiveOptions{Poll: 100 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		// Other tests write to the journal meanwhile: read until Close acts.
		for {
			if _, err := s.Next(context.Background()); err != nil {
				done <- err
				return
			}
		}
	}()
	testenv.WaitBlocked(t, "journal.(*LiveReader).Next", 5*time.Second)
	_ = s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
}

// TestVacuumUnderTheReader: journal files are archived and deleted (as
// journald's vacuuming does) while a source follows them, and a source
// restarted with a cursor into a deleted file resumes at the nearest entry,
// says so, and reads on. Runs on a journal namespace of its own.
func TestVacuumUnderTheReader(t *testing.T) {
	if testing.Short() {
		t.Skip("live journald test")
	}
	ns := journald.StartNamespace(t, fmt.Sprintf("ppvac%d", os.Getpid()))
	send := func(from, to int) {
		var es []map[string]string
		for i := from; i < to; i++ {
			es = append(es, map[string]string{"MESSAGE": fmt.Sprintf("vac %d", i)})
		}
		ns.Send(t, es...)
	}
	readUntil := func(s *LiveReader, want string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got []string
		for {
			l, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("reading up to %q (have %d): %v", want, len(got), err)
			}
			if strings.HasPrefix(l.Message, "vac ") {
				got = append(got, l.Message)
				if l.Message == want {
					return got
				}
			}
		}
	}
	send(0, 100)
	s, err := OpenLive(LiveOptions{Dir: ns.Dir, Head: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	readUntil(s, "vac 49")
	cursor, err := s.Cursor()
	if err != nil {
		t.Fatal(err)
	}
	// Every entry up to vac 99 is in the file the rotation archives (and
	// the test deletes): journald writes what it is sent in its own time,
	// so read up to the last before rotating.
	readUntil(s, "vac 99")
	ns.Rotate(t)
	send(100, 200)
	archived, _ := filepath.Glob(filepath.Join(ns.Dir, "system@*.journal"))
	if len(archived) == 0 {
		t.Fatal("rotation archived nothing")
	}
	for _, f := range archived {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	// The following source goes on to the new file's entries.
	got := readUntil(s, "vac 199")
	if got[len(got)-1] != "vac 199" {
		t.Errorf("following source ended at %q", got[len(got)-1])
	}
	// A new source with the cursor into the deleted file.
	s2, err := OpenLive(LiveOptions{Dir: ns.Dir, Cursor: cursor})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s2.Close() }()
	if !s2.Stats().CursorLost {
		t.Error("cursor into a vacuumed file not reported lost")
	}
	got = readUntil(s2, "vac 199")
	if got[0] != "vac 100" {
		t.Errorf("resumed at %q, want the nearest surviving entry, vac 100", got[0])
	}
}

// TestFillKeepsEachProcessItsOwnIdentity: Fill reads a process's trusted
// fields whole once and reuses them for its next lines within a second.
// Lines of several processes interleaved — root's, then a non-root
// logger's, then root's again — each keep their own process's identity.
func TestFillKeepsEachProcessItsOwnIdentity(t *testing.T) {
	s := openSource(t, LiveOptions{Lazy: true})
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	mark := marker(t)
	journald.Cat(t, "pptest", mark+" a1", mark+" a2", mark+" a3")
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"logger", "-u", "/run/systemd/journal/dev-log", "-t", "pptest", mark+" b1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logger: %v: %s", err, out)
	}
	journald.Cat(t, "pptest", mark+" c1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := map[string]logline.Line{}
	for len(got) < 5 {
		l, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("after %d lines: %v", len(got), err)
		}
		if !strings.Contains(l.Message, mark) {
			continue
		}
		if err := s.Fill(&l); err != nil {
			t.Fatal(err)
		}
		got[strings.TrimPrefix(l.Message, mark+" ")] = l
	}
	a1, a2, a3, b1, c1 := got["a1"], got["a2"], got["a3"], got["b1"], got["c1"]
	for _, l := range []logline.Line{a2, a3} {
		if l.Origin != a1.Origin {
			t.Errorf("%q origin %+v, want the same process as a1 %+v", l.Message, l.Origin, a1.Origin)
		}
	}
	if a1.Origin.UID != 0 || a1.Origin.PID <= 0 || a1.Origin.Transport != "stdout" {
		t.Errorf("a1 origin %+v", a1.Origin)
	}
	if b1.Origin.UID != 65534 || b1.Origin.Transport != "syslog" || b1.Origin.PID == a1.Origin.PID {
		t.Errorf("b1 origin %+v, want UID 65534 of its own process", b1.Origin)
	}
	if c1.Origin.UID != 0 || c1.Origin.PID == a1.Origin.PID || c1.Origin.PID == b1.Origin.PID {
		t.Errorf("c1 origin %+v, want root's third process", c1.Origin)
	}
	for k, l := range got {
		if l.Time.IsZero() {
			t.Errorf("%s has no time", k)
		}
	}
}
