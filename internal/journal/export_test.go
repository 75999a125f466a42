package journal

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pidpressure/pidpressure/internal/logline"
)

func readAll(t *testing.T, next func() (Entry, error)) ([]Entry, []error) {
	t.Helper()
	var out []Entry
	var errs []error
	for i := 0; i < 100000; i++ {
		e, err := next()
		if errors.Is(err, io.EOF) {
			return out, errs
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("entry %d: unexpected fatal error %v", i, err)
			}
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	t.Fatal("reader did not reach EOF")
	return nil, nil
}

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "journal", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestCapturedFormatsAgree reads the same real journal entries saved by
// journalctl as JSON and in the export format: both readers must yield the
// same entries.
func TestCapturedFormatsAgree(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"capture-failures", "capture-binary"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fromJSON, errs := readAll(t, NewJSONReader(open(t, name+".json"), 0).Next)
			if len(errs) > 0 {
				t.Fatalf("JSON: %v", errs)
			}
			fromExport, errs := readAll(t, NewExportReader(open(t, name+".export"), 0).Next)
			if len(errs) > 0 {
				t.Fatalf("export: %v", errs)
			}
			if len(fromJSON) == 0 {
				t.Fatal("no entries")
			}
			if diff := cmp.Diff(fromJSON, fromExport); diff != "" {
				t.Errorf("JSON and export entries differ (-json +export):\n%s", diff)
			}
		})
	}
}

func TestCapturedBinaryMessage(t *testing.T) {
	t.Parallel()
	entries, _ := readAll(t, NewExportReader(open(t, "capture-binary.export"), 0).Next)
	var msgs []string
	for _, e := range entries {
		msgs = append(msgs, e[FieldMessage])
	}
	want := "\x1b[31mbash: fork: retry: Resource temporarily unavailable\x1b[0m"
	if !strings.Contains(strings.Join(msgs, "\n"), want) {
		t.Errorf("messages %q lack the binary message %q", msgs, want)
	}
}

// TestCapturedTrust checks the trust of real entries: journald attributes a
// process in the kubelet.service cgroup to that unit; a line a non-root user
// sent as "kubelet" carries its real UID; a userspace /dev/kmsg write is
// journaled with _TRANSPORT=kernel but facility 1 and is not the kernel's.
func TestCapturedTrust(t *testing.T) {
	t.Parallel()
	entries, _ := readAll(t, NewJSONReader(open(t, "capture-failures.json"), 0).Next)
	var unit, forgedUser, forgedKmsg, kernel int
	for _, e := range entries {
		l := Translate(e)
		msg := l.Message
		switch {
		case strings.HasPrefix(msg, "runtime: failed to create new OS thread") && l.Origin.Unit == "kubelet.service":
			unit++
			if l.Origin.Cgroup != "/system.slice/kubelet.service" || l.Origin.UID != 0 || l.Origin.PID <= 0 {
				t.Errorf("kubelet.service line origin = %+v", l.Origin)
			}
		case strings.HasPrefix(msg, "runtime: failed to create new OS thread"):
			forgedUser++
			if l.Origin.UID != 65534 || l.Origin.Unit != "" {
				t.Errorf("forged line origin = %+v, want UID 65534 and no unit", l.Origin)
			}
		case strings.HasPrefix(msg, "cgroup: fork rejected") && l.FromKernel():
			kernel++
		case strings.HasPrefix(msg, "cgroup: fork rejected"):
			forgedKmsg++
			if l.Origin.Transport != "kernel" || l.Facility != 1 || l.Trust(true) != logline.TrustForged {
				t.Errorf("forged kmsg line: transport %q facility %d trust %s", l.Origin.Transport, l.Facility, l.Trust(true))
			}
		}
	}
	if unit != 1 || forgedUser != 2 || forgedKmsg != 1 || kernel != 2 {
		t.Errorf("unit-attributed %d, forged by user %d, forged kmsg %d, kernel %d; want 1, 2, 1, 2", unit, forgedUser, forgedKmsg, kernel)
	}
}

// binaryMessage is a MESSAGE field in the export format's binary form.
func binaryMessage(value string) string {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(value)))
	return "MESSAGE\n" + string(n[:]) + value + "\n"
}

func TestExportReader(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100)
	tests := []struct {
		name    string
		in      string
		want    []Entry
		wantBad int
	}{
		{name: "empty", in: ""},
		{name: "one entry no trailing blank", in: "MESSAGE=a\n_PID=1", want: []Entry{{"MESSAGE": "a", "_PID": "1"}}},
		{name: "two entries and extra blanks", in: "\n\nMESSAGE=a\n\n\nMESSAGE=b\n\n", want: []Entry{{"MESSAGE": "a"}, {"MESSAGE": "b"}}},
		{name: "value with equals", in: "MESSAGE=a=b\n\n", want: []Entry{{"MESSAGE": "a=b"}}},
		{name: "binary", in: binaryMessage("a\nb\x00c") + "\n", want: []Entry{{"MESSAGE": "a\nb\x00c"}}},
		{name: "binary too large skipped", in: binaryMessage(long) + "\nMESSAGE=next\n\n", want: []Entry{{"MESSAGE": "next"}}, wantBad: 1},
		{name: "line too long skipped", in: "MESSAGE=" + long + "\n\nMESSAGE=next\n\n", want: []Entry{{"MESSAGE": "next"}}, wantBad: 1},
		{name: "truncated length", in: "MESSAGE\n\x01\x00", wantBad: 1},
		{name: "truncated value", in: "MESSAGE\n\x10\x00\x00\x00\x00\x00\x00\x00abc", wantBad: 1},
		{name: "no newline after value", in: "MESSAGE\n\x01\x00\x00\x00\x00\x00\x00\x00aX=y\n\nMESSAGE=ok\n\n", want: []Entry{{"MESSAGE": "ok"}}, wantBad: 1},
		{name: "huge declared length", in: "MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\x7f", wantBad: 1},
		// A corrupt length is reported in place and the entries after it survive.
		{name: "absurd length then entries", in: "MESSAGE=a\n_PID=1\n\nMESSAGE\n\xff\xff\xff\xff\xff\xff\xff\x7fab\n\nMESSAGE=next\n\nMESSAGE=third\n\n",
			want: []Entry{{"MESSAGE": "a", "_PID": "1"}, {"MESSAGE": "next"}, {"MESSAGE": "third"}}, wantBad: 1},
		{name: "length of newlines then entries", in: "MESSAGE\n\n\n\n\n\n\n\n\nMESSAGE=next\n\n",
			want: []Entry{{"MESSAGE": "next"}}, wantBad: 1},
		{name: "length too long swallowing the next entry", in: "_PID=1\nMESSAGE\n\x28\x00\x00\x00\x00\x00\x00\x00ab\n\nMESSAGE=next\n\nMESSAGE=third\n\nMESSAGE=fourth\n\n",
			want: []Entry{{"MESSAGE": "next"}, {"MESSAGE": "third"}, {"MESSAGE": "fourth"}}, wantBad: 1},
		{name: "length too short", in: "MESSAGE\n\x01\x00\x00\x00\x00\x00\x00\x00abc\n\nMESSAGE=next\n\n",
			want: []Entry{{"MESSAGE": "next"}}, wantBad: 1},
		{name: "length past the end", in: "MESSAGE\n\x30\x00\x00\x00\x00\x00\x00\x00ab\n\nMESSAGE=next\n",
			want: []Entry{{"MESSAGE": "next"}}, wantBad: 1},
		{name: "two corrupt entries", in: "A\n\x05\x00\x00\x00\x00\x00\x00\x00x\n\nMESSAGE=b\n\nB\n\xff\xff\xff\xff\xff\xff\xff\xff\n\nMESSAGE=c\n\n",
			want: []Entry{{"MESSAGE": "b"}, {"MESSAGE": "c"}}, wantBad: 2},
		{name: "over the limit but believable", in: binaryMessage(long+"\n\nMESSAGE=forged\n\n") + "_PID=1\n\nMESSAGE=next\n\n",
			want: []Entry{{"MESSAGE": "next"}}, wantBad: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, errs := readAll(t, NewExportReader(strings.NewReader(tt.in), 64).Next)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries mismatch (-want +got):\n%s", diff)
			}
			if len(errs) != tt.wantBad {
				t.Errorf("got %d malformed entries (%v), want %d", len(errs), errs, tt.wantBad)
			}
		})
	}
}

// TestExportLongBinaryValue: a value longer than the look-ahead is read
// whole and must be followed by a newline; when it is not, its entry is
// malformed and the next entry boundary after it is found.
func TestExportLongBinaryValue(t *testing.T) {
	t.Parallel()
	v := strings.Repeat("x", peekMax+100)
	good := binaryMessage(v) + "\n"
	bad := strings.TrimSuffix(binaryMessage(v), "\n") + "Y\n\n"
	got, errs := readAll(t, NewExportReader(strings.NewReader(good+bad+"MESSAGE=next\n\n"), 1<<20).Next)
	if diff := cmp.Diff([]Entry{{"MESSAGE": v}, {"MESSAGE": "next"}}, got); diff != "" {
		t.Errorf("entries mismatch (-want +got):\n%s", diff)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "no newline after the") {
		t.Errorf("errors %v, want one about the missing newline", errs)
	}
}

func TestJSONReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []Entry
		wantBad int
	}{
		{name: "string fields", in: `{"MESSAGE":"fork: retry","_PID":"42"}` + "\n", want: []Entry{{"MESSAGE": "fork: retry", "_PID": "42"}}},
		{name: "byte array", in: `{"MESSAGE":[27,91,104,105]}`, want: []Entry{{"MESSAGE": "\x1b[hi"}}},
		{name: "null dropped", in: `{"MESSAGE":null,"_PID":"1"}`, want: []Entry{{"_PID": "1"}}},
		{name: "repeated field keeps first", in: `{"MESSAGE":["a","b"]}`, want: []Entry{{"MESSAGE": "a"}}},
		{name: "repeated binary field", in: `{"MESSAGE":[[104],[105]]}`, want: []Entry{{"MESSAGE": "h"}}},
		{name: "number accepted", in: `{"PRIORITY":3}`, want: []Entry{{"PRIORITY": "3"}}},
		{name: "blank lines skipped", in: "\n\n" + `{"MESSAGE":"a"}` + "\n\n", want: []Entry{{"MESSAGE": "a"}}},
		{name: "not json then good", in: "garbage\n" + `{"MESSAGE":"a"}`, want: []Entry{{"MESSAGE": "a"}}, wantBad: 1},
		{name: "byte out of range", in: `{"MESSAGE":[300]}`, wantBad: 1},
		{name: "object value", in: `{"MESSAGE":{"a":1}}`, wantBad: 1},
		{name: "array top level", in: `["MESSAGE"]`, wantBad: 1},
		{name: "too long", in: `{"MESSAGE":"` + strings.Repeat("y", 200) + `"}` + "\n" + `{"MESSAGE":"a"}`, want: []Entry{{"MESSAGE": "a"}}, wantBad: 1},
		{name: "binary garbage", in: "\x00\xff\xfe{\n", wantBad: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, errs := readAll(t, NewJSONReader(strings.NewReader(tt.in), 128).Next)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries mismatch (-want +got):\n%s", diff)
			}
			if len(errs) != tt.wantBad {
				t.Errorf("got %d malformed records (%v), want %d", len(errs), errs, tt.wantBad)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	got := Translate(Entry{
		FieldMessage: "m", FieldRealtime: "1732960800000001", FieldPriority: "3", FieldFacility: "0",
		FieldPID: "7", FieldUID: "0", FieldComm: "kubelet", FieldUnit: "kubelet.service",
		FieldCgroup: "/system.slice/kubelet.service", FieldTransport: "stdout", FieldCursor: "s=1",
		"SYSLOG_IDENTIFIER": "containerd",
	})
	if got.Message != "m" || got.Priority != 3 || got.Facility != 0 || got.Origin.PID != 7 || got.Origin.UID != 0 ||
		got.Origin.Comm != "kubelet" || got.Origin.Unit != "kubelet.service" || got.Cursor != "s=1" ||
		got.Time.UnixMicro() != 1732960800000001 {
		t.Errorf("Translate() = %+v", got)
	}
	bad := Translate(Entry{FieldPID: "-1", FieldUID: "x", FieldPriority: "9", FieldRealtime: "soon"})
	if bad.Origin.PID != logline.Unknown || bad.Origin.UID != logline.Unknown || bad.Priority != logline.Unknown || !bad.Time.IsZero() {
		t.Errorf("Translate(bad) = %+v, want unknowns", bad)
	}
}

func FuzzExportReader(f *testing.F) {
	f.Add("MESSAGE=a\n_PID=1\n\n" + binaryMessage("x\ny"))
	f.Add("MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\x7f")
	f.Fuzz(func(t *testing.T, in string) {
		r := NewExportReader(strings.NewReader(in), 1024)
		for i := 0; i <= len(in)+1; i++ {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
		}
		t.Fatalf("no EOF after %d calls", len(in)+2)
	})
}

func FuzzJSONReader(f *testing.F) {
	f.Add(`{"MESSAGE":[27,91],"_PID":"1"}` + "\n" + `{"MESSAGE":null}`)
	f.Fuzz(func(t *testing.T, in string) {
		r := NewJSONReader(strings.NewReader(in), 1024)
		for i := 0; i <= len(in)+1; i++ {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
		}
		t.Fatalf("no EOF after %d calls", len(in)+2)
	})
}
