package kmsg

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidpressure/pidpressure/internal/logline"
)

// ErrMalformed is wrapped by every error about a record that is not in the
// /dev/kmsg format.
var ErrMalformed = errors.New("malformed kmsg record")

// Record is one /dev/kmsg record.
type Record struct {
	// Facility is the syslog facility; 0 is the kernel.
	Facility int
	// Level is the syslog level, 0 (emerg) to 7 (debug).
	Level int
	// Seq is the record's sequence number; it grows by one per record and
	// resets only at boot.
	Seq uint64
	// Since is the time since boot at which the record was stored.
	Since time.Duration
	// Continued is true for a fragment of a continued line (flag 'c').
	Continued bool
	// Message is the text, with the kernel's \xNN escapes decoded.
	Message string
	// Dict holds the KEY=VALUE continuation lines (SUBSYSTEM, DEVICE, …).
	Dict map[string]string
}

// parseRecord parses one record: the header line and any continuation lines,
// joined by newlines.
//
// Format: PREFIX,SEQNUM,TIMESTAMP_US,FLAG[,…];MESSAGE
// followed by zero or more " KEY=VALUE" lines, e.g.
//
//	6,339,119291801,-;cgroup: fork rejected by pids controller in /ppcap-go
//
// (Documentation/ABI/testing/dev-kmsg). Unknown extra prefix fields are
// skipped so that newer kernels still parse (the printk caller ID is one).
func parseRecord(s string) (Record, error) {
	header, rest, _ := strings.Cut(s, "\n")
	prefix, msg, ok := strings.Cut(header, ";")
	if !ok {
		return Record{}, fmt.Errorf("%w: no ';' after the prefix", ErrMalformed)
	}
	fields := strings.Split(prefix, ",")
	if len(fields) < 4 {
		return Record{}, fmt.Errorf("%w: prefix %q has %d fields, want at least 4", ErrMalformed, logline.Clip(prefix, 64), len(fields))
	}
	pri, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil {
		return Record{}, fmt.Errorf("%w: priority: %w", ErrMalformed, err)
	}
	seq, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("%w: sequence number: %w", ErrMalformed, err)
	}
	us, err := strconv.ParseUint(fields[2], 10, 63)
	if err != nil {
		return Record{}, fmt.Errorf("%w: timestamp: %w", ErrMalformed, err)
	}
	r := Record{
		Facility:  int(pri >> 3),
		Level:     int(pri & 7),
		Seq:       seq,
		Since:     time.Duration(us) * time.Microsecond,
		Continued: fields[3] == "c",
		Message:   unescape(msg),
	}
	for line := range strings.SplitSeq(rest, "\n") {
		if !strings.HasPrefix(line, " ") {
			continue // a blank line or stray text: not part of the dictionary
		}
		k, v, ok := strings.Cut(line[1:], "=")
		if !ok || k == "" {
			continue
		}
		if r.Dict == nil {
			r.Dict = map[string]string{}
		}
		r.Dict[k] = unescape(v)
	}
	return r, nil
}

// unescape decodes the kernel's \xNN escapes of non-printable bytes.
func unescape(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Line converts the record to a line. boot is the wall-clock time of boot;
// when zero, the line's Time is zero.
func (r Record) Line(boot time.Time) logline.Line {
	l := logline.New(logline.SourceKmsg, r.Message)
	l.Facility = r.Facility
	l.Priority = r.Level
	l.Seq = r.Seq
	if !boot.IsZero() {
		l.Time = boot.Add(r.Since)
	}
	return l
}

// Parse parses one record as returned by a read of /dev/kmsg or as saved by
// "cat /dev/kmsg": the header line and its continuation lines.
func Parse(s string) (Record, error) { return parseRecord(strings.TrimSuffix(s, "\n")) }

// parseSeq returns the sequence number of a record (the second field of its
// prefix, "6,339,119291801,-;…") without parsing the rest, for the scan of
// the ring at Open.
func parseSeq(b []byte) (uint64, bool) {
	prefix, _, ok := bytes.Cut(b, []byte{';'})
	if !ok {
		return 0, false
	}
	_, rest, ok := bytes.Cut(prefix, []byte{','})
	if !ok {
		return 0, false
	}
	num, _, ok := bytes.Cut(rest, []byte{','})
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(num), 10, 64)
	return seq, err == nil
}
