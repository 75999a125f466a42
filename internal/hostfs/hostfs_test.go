package hostfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeTree writes files under a new temporary directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReads(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"proc/sys/kernel/pid_max": "32768\n",
		"bad":                     "12x\n",
		"empty":                   "",
		"big":                     strings.Repeat("x", DefaultMaxRead+1),
	})
	r := New(dir)
	if n, err := ReadUint(r.ProcPath("sys", "kernel", "pid_max")); err != nil || n != 32768 {
		t.Errorf("ReadUint = %d, %v", n, err)
	}
	if _, err := ReadUint(filepath.Join(dir, "bad")); err == nil {
		t.Error("ReadUint accepted 12x")
	}
	if _, err := ReadUint(filepath.Join(dir, "empty")); err == nil {
		t.Error("ReadUint accepted an empty file")
	}
	if _, err := ReadSmall(filepath.Join(dir, "big")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadSmall(big) error = %v, want ErrTooLarge", err)
	}
	_, err := ReadSmall(filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) || !Vanished(err) {
		t.Errorf("ReadSmall(missing) error = %v, want not-exist and Vanished", err)
	}
	if !Vanished(&fs.PathError{Op: "read", Path: "/proc/1/status", Err: syscall.ESRCH}) || Vanished(syscall.EACCES) {
		t.Error("Vanished misclassifies ESRCH or EACCES")
	}
	if r.SysPath("fs", "cgroup") != filepath.Join(dir, "sys", "fs", "cgroup") || r.VarPath("log") != filepath.Join(dir, "var", "log") {
		t.Error("root paths")
	}
}

// TestFileRereads: a kept-open file sees new contents at each Read, as
// /proc files do.
func TestFileRereads(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"loadavg": "0.00 0.00 0.00 1/78 1965\n"})
	f, err := OpenFile(filepath.Join(dir, "loadavg"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	b, err := f.Read()
	if err != nil || !strings.Contains(string(b), "1/78") {
		t.Fatalf("Read = %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "loadavg"), []byte("0.00 0.00 0.00 2/99 2000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err = f.Read(); err != nil || !strings.Contains(string(b), "2/99") {
		t.Errorf("second Read = %q, %v", b, err)
	}
	real, err := OpenFile("/proc/loadavg")
	if err != nil {
		t.Skip("no /proc/loadavg")
	}
	defer func() { _ = real.Close() }()
	for i := 0; i < 3; i++ {
		if b, err := real.Read(); err != nil || len(b) == 0 {
			t.Errorf("/proc/loadavg read %d: %q, %v", i, b, err)
		}
	}
}
