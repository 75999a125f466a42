package nodevm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		rcFile        string
		console       string
		want          int
		wantErrSubstr string
	}{
		{name: "share and console agree", rcFile: "0\n", console: "x\r\nNODEVM-RC=0\r\n[ 3.1] reboot: Power down\r\n", want: 0},
		{name: "failure", rcFile: "3\n", console: "NODEVM-RC=3\r\n", want: 3},
		{name: "share only", rcFile: "7\n", console: "[ 9.0] reboot: Power down\r\n", want: 7},
		{name: "console only", console: "NODEVM-RC=1\r\n", want: 1},
		{name: "neither", console: "[ 2.0] Kernel panic\r\n", want: -1, wantErrSubstr: "without reporting"},
		{name: "disagree", rcFile: "0\n", console: "NODEVM-RC=2\r\n", want: -1, wantErrSubstr: "exit code 0 in the share but 2"},
		{name: "garbage in share", rcFile: "x\n", console: "NODEVM-RC=0\r\n", want: -1, wantErrSubstr: `holds "x"`},
		{name: "marker inside a line is not the marker", console: "echo NODEVM-RC=5\r\n", want: -1, wantErrSubstr: "without reporting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := exitCode(tt.rcFile, tt.console)
			if tt.wantErrSubstr == "" && err != nil {
				t.Fatalf("exitCode() error = %v", err)
			}
			if tt.wantErrSubstr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrSubstr)) {
				t.Fatalf("exitCode() error = %v, want one containing %q", err, tt.wantErrSubstr)
			}
			if got != tt.want {
				t.Errorf("exitCode() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestGuestUptime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		console string
		want    time.Duration
	}{
		// The TTY reset that systemd writes precedes the marker on its line.
		{name: "after a tty reset", console: "\x1b[!p\x1b]104\a\x1b[?7hNODEVM-START uptime=14.61\r\nfoo\r\n", want: 14610 * time.Millisecond},
		{name: "whole seconds", console: "NODEVM-START uptime=3\r\n", want: 3 * time.Second},
		{name: "no marker", console: "[ 1.0] Run /init as init process\r\n", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := guestUptime(tt.console); got != tt.want {
				t.Errorf("guestUptime() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteShare(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	err := writeShare(dir, "#!/bin/bash\necho hi\n", map[string]string{"a.pl": "1;\n", "sub/b.txt": "b"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		got[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"run.sh": "#!/bin/bash\necho hi\n", "a.pl": "1;\n", "sub/b.txt": "b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("share mismatch (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("run.sh not executable: %v %v", fi.Mode(), err)
	}

	for _, name := range []string{"../escape", "/abs", "run.sh", "rc", "out.log"} {
		if err := writeShare(t.TempDir(), "", map[string]string{name: "x"}); err == nil {
			t.Errorf("writeShare accepted the file name %q", name)
		}
	}
}

func TestCheckImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := CheckImage(dir); err == nil {
		t.Fatal("CheckImage() accepted an empty directory")
	}
	for _, f := range []string{kernelFile, initrdFile, rootFile} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckImage(dir); err != nil {
		t.Errorf("CheckImage() = %v for a complete directory", err)
	}
	if err := CheckImage(""); err == nil {
		t.Error("CheckImage(\"\") accepted no directory")
	}
}
