//go:build cgo

package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/testenv/journald"
)

// openEnv, when set, makes the test binary open a journal source with these
// options (JSON) instead of running tests, and print an openResult: the
// tests below run it as another user.
const openEnv = "PIDPRESSURE_TEST_OPEN_JOURNAL"

type openResult struct {
	Err          string `json:"err,omitempty"`
	NotSupported bool   `json:"notSupported"`
	Unreadable   string `json:"unreadable,omitempty"`
	// Read is true when an entry was read within a second.
	Read bool `json:"read"`
}

// openAsChild opens the source as the child process does and prints the result.
func openAsChild(opts string) int {
	var opt LiveOptions
	if err := json.Unmarshal([]byte(opts), &opt); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var res openResult
	s, err := OpenLive(opt)
	if err != nil {
		res.Err, res.NotSupported = err.Error(), errors.Is(err, hostfs.ErrNotSupported)
	} else {
		if u := s.Stats().Unreadable; u != nil {
			res.Unreadable = u.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := s.Next(ctx)
		cancel()
		res.Read = err == nil
		_ = s.Close()
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

// openAsNobody opens a source with opt in a copy of this test binary run as
// user and group 65534 with no supplementary groups.
func openAsNobody(t *testing.T, opt LiveOptions) openResult {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The build directory is private to root: copy the binary where
	// another user may run it.
	bin := filepath.Join(worldDir(t), "journal.test")
	journald.CopyFile(t, self, bin, 0o755)
	opts, err := json.Marshal(opt)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin)
	cmd.Env = append(os.Environ(), openEnv+"="+string(opts))
	cmd.Dir = "/"
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("child: %v: %s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var res openResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child printed %q: %v", out, err)
	}
	return res
}

// worldDir returns a new directory (removed after the test) that every user
// may enter and list.
func worldDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// systemJournalFile returns a file of the running journald's system journal,
// written to just now.
func systemJournalFile(t *testing.T) string {
	t.Helper()
	journald.Ensure(t)
	journald.Cat(t, "pptest", marker(t))
	for _, root := range systemJournalDirs() {
		files, _ := filepath.Glob(filepath.Join(root, "*", "system.journal"))
		for _, f := range files {
			if isMachineID(filepath.Base(filepath.Dir(f))) {
				return f
			}
		}
	}
	t.Skip("no system.journal of journald found")
	return ""
}

// TestUnreadableJournalNotSupported: a process that may not read any journal
// file (here: user 65534, the files root's, mode 0600) gets ErrNotSupported
// naming the directory and the permission problem, instead of a source
// that follows nothing and looks healthy. The same files readable open and
// read; with some readable, the source opens and names what it cannot read.
func TestUnreadableJournalNotSupported(t *testing.T) {
	if testing.Short() {
		t.Skip("live journald test (skipped under -short)")
	}
	src := systemJournalFile(t)
	// Real journal files of the running journald, copied as root.
	journalDir := func(t *testing.T, dirMode os.FileMode, fileModes ...os.FileMode) string {
		t.Helper()
		dir := filepath.Join(worldDir(t), "journal")
		if err := os.Mkdir(dir, dirMode); err != nil {
			t.Fatal(err)
		}
		for i, m := range fileModes {
			journald.CopyFile(t, src, filepath.Join(dir, fmt.Sprintf("system@pptest-%d.journal", i)), m)
		}
		if err := os.Chmod(dir, dirMode); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("files 0600", func(t *testing.T) {
		dir := journalDir(t, 0o755, 0o600, 0o600)
		res := openAsNobody(t, LiveOptions{Dir: dir, Head: true})
		if !res.NotSupported || !strings.Contains(res.Err, dir) || !strings.Contains(res.Err, "permission denied") {
			t.Errorf("as user 65534 with the files 0600: %+v; want ErrNotSupported naming %s and the permission problem", res, dir)
		}
	})
	t.Run("directory 0700", func(t *testing.T) {
		dir := journalDir(t, 0o700, 0o644)
		res := openAsNobody(t, LiveOptions{Dir: dir, Head: true})
		if !res.NotSupported || !strings.Contains(res.Err, dir) || !strings.Contains(res.Err, "permission denied") {
			t.Errorf("as user 65534 with the directory 0700: %+v; want ErrNotSupported naming %s and the permission problem", res, dir)
		}
	})
	t.Run("files 0644", func(t *testing.T) {
		dir := journalDir(t, 0o755, 0o644)
		if res := openAsNobody(t, LiveOptions{Dir: dir, Head: true}); res.Err != "" || !res.Read || res.Unreadable != "" {
			t.Errorf("as user 65534 with the files readable: %+v; want it open, reading", res)
		}
	})
	t.Run("some readable", func(t *testing.T) {
		dir := journalDir(t, 0o755, 0o644, 0o600)
		res := openAsNobody(t, LiveOptions{Dir: dir, Head: true})
		if res.Err != "" || !res.Read || !strings.Contains(res.Unreadable, "system@pptest-1.journal") {
			t.Errorf("as user 65534 with one file of two readable: %+v; want it open, reading, naming the other", res)
		}
	})
	t.Run("system journal", func(t *testing.T) {
		if fi, err := os.Stat(filepath.Dir(src)); err != nil || fi.Mode().Perm()&0o005 != 0 {
			t.Skipf("%s is open to other users here", filepath.Dir(src))
		}
		res := openAsNobody(t, LiveOptions{})
		if !res.NotSupported || !strings.Contains(res.Err, filepath.Dir(src)) || !strings.Contains(res.Err, "permission denied") {
			t.Errorf("as user 65534 on the system journal: %+v; want ErrNotSupported naming %s", res, filepath.Dir(src))
		}
	})
}

func TestIsMachineID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"3d1219c7c4c5404aaa1f6d2a48adfda4":       true,
		"3D1219C7C4C5404AAA1F6D2A48ADFDA4":       true,
		"1ec6fd9a-569a-47d9-90c8-a15493bd6e53":   true,
		"3d1219c7c4c5404aaa1f6d2a48adfda4.ppvac": false,
		"3d1219c7c4c5404aaa1f6d2a48adfda":        false,
		"3d1219c7c4c5404aaa1f6d2a48adfdag":       false,
		"1ec6fd9a569a-47d9-90c8-a15493bd6e53x":   false,
		"":                                       false,
	} {
		if got := isMachineID(in); got != want {
			t.Errorf("isMachineID(%q) = %v, want %v", in, got, want)
		}
	}
}
