package kmsg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pidpressure/pidpressure/internal/logline"
)

func TestParseRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Record
		wantErr error
	}{
		{
			name: "kernel pids controller",
			in:   "6,339,119291801,-;cgroup: fork rejected by pids controller in /ppcap-go",
			want: Record{Facility: 0, Level: 6, Seq: 339, Since: 119291801 * time.Microsecond, Message: "cgroup: fork rejected by pids controller in /ppcap-go"},
		},
		{
			name: "userspace write is facility 1",
			in:   "12,4021,5000000,-;kubelet: runtime: failed to create new OS thread",
			want: Record{Facility: 1, Level: 4, Seq: 4021, Since: 5 * time.Second, Message: "kubelet: runtime: failed to create new OS thread"},
		},
		{
			name: "dictionary and caller id",
			in:   "6,187,255761,-,caller=T1;acpi PNP0A08:00: _OSC: OS supports\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00",
			want: Record{Level: 6, Seq: 187, Since: 255761 * time.Microsecond, Message: "acpi PNP0A08:00: _OSC: OS supports",
				Dict: map[string]string{"SUBSYSTEM": "acpi", "DEVICE": "+acpi:PNP0A08:00"}},
		},
		{
			name: "escaped tab and continuation flag",
			in:   `6,89,201675,c;rcu: \x09RCU restricting CPUs`,
			want: Record{Level: 6, Seq: 89, Since: 201675 * time.Microsecond, Continued: true, Message: "rcu: \tRCU restricting CPUs"},
		},
		{name: "bad escape kept", in: `6,1,1,-;a\xZZb\x4`, want: Record{Level: 6, Seq: 1, Since: time.Microsecond, Message: `a\xZZb\x4`}},
		{name: "semicolon in message", in: "6,1,1,-;a;b", want: Record{Level: 6, Seq: 1, Since: time.Microsecond, Message: "a;b"}},
		{name: "empty message", in: "6,1,1,-;", want: Record{Level: 6, Seq: 1, Since: time.Microsecond}},
		{name: "missing semicolon", in: "6,339,5140900,-", wantErr: ErrMalformed},
		{name: "too few fields", in: "6,339;x", wantErr: ErrMalformed},
		{name: "bad priority", in: "x,1,1,-;m", wantErr: ErrMalformed},
		{name: "bad sequence", in: "6,-1,1,-;m", wantErr: ErrMalformed},
		{name: "bad timestamp", in: "6,1,1e3,-;m", wantErr: ErrMalformed},
		{name: "empty", in: "", wantErr: ErrMalformed},
		{name: "plain text", in: "[  141.259862] cgroup: fork rejected", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseRecord(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseRecord(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseRecord() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseOverlongRecord(t *testing.T) {
	t.Parallel()
	msg := strings.Repeat("x", 1<<20)
	r, err := Parse("6,1,1,-;" + msg + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Message) != len(msg) {
		t.Errorf("message length = %d, want %d", len(r.Message), len(msg))
	}
}

// TestCapturedSample parses the records captured from this machine's
// /dev/kmsg after a real pids cgroup refused a fork.
func TestCapturedSample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "kmsg", "pids-fork-rejected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 {
		t.Fatal("empty sample")
	}
	boot := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for _, s := range lines {
		r, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) error = %v", s, err)
		}
		l := r.Line(boot)
		if !l.FromKernel() || l.Trust(true) != logline.TrustKernel {
			t.Errorf("%q: FromKernel() = %v, Trust = %s; want a kernel-trusted line", s, l.FromKernel(), l.Trust(true))
		}
		if !strings.HasPrefix(l.Message, "cgroup: fork rejected by pids controller in /") {
			t.Errorf("message = %q", l.Message)
		}
		if want := boot.Add(r.Since); !l.Time.Equal(want) {
			t.Errorf("time = %v, want %v", l.Time, want)
		}
	}
}

func TestUserspaceRecordIsNotKernel(t *testing.T) {
	t.Parallel()
	r, err := Parse("14,9000,1,-;cgroup: fork rejected by pids controller in /system.slice/kubelet.service")
	if err != nil {
		t.Fatal(err)
	}
	l := r.Line(time.Time{})
	if l.FromKernel() {
		t.Error("facility 1 record reported as written by the kernel")
	}
	if got := l.Trust(true); got != logline.TrustForged {
		t.Errorf("Trust(kernel claim) = %s, want %s", got, logline.TrustForged)
	}
	if !l.Time.IsZero() {
		t.Errorf("time = %v with unknown boot time, want zero", l.Time)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add("6,339,119291801,-;cgroup: fork rejected by pids controller in /ppcap-go")
	f.Add("6,187,255761,-,caller=T1;acpi\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00")
	f.Add(`6,89,201675,c;rcu: \x09RCU`)
	f.Add("6,339,5140900,-")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRecord(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parseRecord(%q) error %v does not wrap ErrMalformed", s, err)
			}
			return
		}
		if r.Level < 0 || r.Level > 7 {
			t.Fatalf("level %d out of range", r.Level)
		}
	})
}

func TestParseSeq(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		want   uint64
		wantOK bool
	}{
		{name: "record", in: "6,339,119291801,-;cgroup: fork rejected by pids controller in /x", want: 339, wantOK: true},
		{name: "first record of a boot", in: "5,0,0,-;Linux version 6.18.44", want: 0, wantOK: true},
		{name: "caller id and dictionary", in: "6,187,255761,-,caller=T1;acpi\n SUBSYSTEM=acpi", want: 187, wantOK: true},
		{name: "commas only in the message", in: "6;a,1,2", wantOK: false},
		{name: "no semicolon", in: "6,339,5140900,-", wantOK: false},
		{name: "not a number", in: "6,x,1,-;m", wantOK: false},
		{name: "empty", in: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseSeq([]byte(tt.in))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseSeq(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
			if rec, err := Parse(tt.in); err == nil && (!ok || rec.Seq != got) {
				t.Errorf("parseSeq(%q) = %d, %v; Parse says seq %d", tt.in, got, ok, rec.Seq)
			}
		})
	}
}

// TestStartFor is the start-position decision of the kmsg source.
func TestStartFor(t *testing.T) {
	t.Parallel()
	const boot, other = "1ec6fd9a-569a-47d9-90c8-a15493bd6e53", "7d0f3b1e-0000-4000-8000-000000000001"
	type want struct {
		Start    Start
		AfterSeq uint64
	}
	tests := []struct {
		name string
		in   Resume
		want want
	}{
		{name: "first start", in: Resume{BootID: boot, Fresh: true}, want: want{StartAtEnd, 0}},
		{name: "first start, boot unknown", in: Resume{Fresh: true}, want: want{StartAtEnd, 0}},
		{name: "same boot", in: Resume{BootID: boot, SavedBootID: boot, SavedSeq: 1208}, want: want{StartAfterSeq, 1208}},
		{name: "same boot, position zero", in: Resume{BootID: boot, SavedBootID: boot}, want: want{StartAfterSeq, 0}},
		{name: "new boot: the whole ring is new", in: Resume{BootID: boot, SavedBootID: other, SavedSeq: 99999}, want: want{StartAtBeginning, 0}},
		{name: "boot unknown now", in: Resume{SavedBootID: other, SavedSeq: 1208}, want: want{StartAtEnd, 0}},
		{name: "kmsg never read before (journal cursor only)", in: Resume{BootID: boot}, want: want{StartAtEnd, 0}},
		{name: "fresh wins over a stray saved boot", in: Resume{BootID: boot, SavedBootID: other, Fresh: true}, want: want{StartAtEnd, 0}},
		{name: "restart within the run", in: Resume{BootID: boot, SavedBootID: boot, SavedSeq: 10, Reached: 1300, InRun: true}, want: want{StartAfterSeq, 1300}},
		{name: "restart within the run after a first start", in: Resume{BootID: boot, Fresh: true, Reached: 1300, InRun: true}, want: want{StartAfterSeq, 1300}},
		{name: "restart within the run, boot unknown", in: Resume{Reached: 7, InRun: true}, want: want{StartAfterSeq, 7}},
		{name: "restart within the run at position zero", in: Resume{BootID: boot, InRun: true}, want: want{StartAfterSeq, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got want
			got.Start, got.AfterSeq = StartFor(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("StartFor(%+v) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
