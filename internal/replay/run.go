package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/pidpressure/pidpressure/internal/logline"
	"github.com/pidpressure/pidpressure/internal/signature"
)

// Output names an output form.
type Output string

// The output forms.
const (
	// OutputText is a table for people.
	OutputText Output = "text"
	// OutputJSONL is one JSON object per record (see [Result]).
	OutputJSONL Output = "jsonl"
)

// maxMessage bounds the message echoed in a result.
const maxMessage = 1024

// Result is one record's outcome: one JSON object per line in jsonl output.
// The fields other than Line and Match are present only when they apply.
type Result struct {
	// Line is the 1-based number of the record in its input.
	Line int `json:"line"`
	// Match is true when a signature matched.
	Match bool `json:"match"`
	// Signature, Family, Class and Strength describe the match.
	Signature string `json:"signature,omitempty"`
	Family    string `json:"family,omitempty"`
	Class     string `json:"class,omitempty"`
	Strength  string `json:"strength,omitempty"`
	// Trust is how far the origin of the record can be believed.
	Trust string `json:"trust,omitempty"`
	// Fields are the facts extracted by the match.
	Fields *signature.Fields `json:"fields,omitempty"`
	// Source is where the record came from (text, kmsg, journal).
	Source string `json:"source,omitempty"`
	// Time is when the record was written, RFC 3339, when known.
	Time string `json:"time,omitempty"`
	// PID, UID, Comm and Unit are the trusted origin, when the input has it.
	PID  int    `json:"pid,omitempty"`
	UID  *int   `json:"uid,omitempty"`
	Comm string `json:"comm,omitempty"`
	Unit string `json:"unit,omitempty"`
	// Cgroup is the sender's cgroup as journald recorded it.
	Cgroup string `json:"cgroup,omitempty"`
	// Message is the record's text, sanitized and cut to 1 KiB.
	Message string `json:"message,omitempty"`
	// Error says why the record was skipped.
	Error string `json:"error,omitempty"`
}

// Summary counts what a run saw.
type Summary struct {
	// Records is the number of records read, skipped ones included.
	Records int `json:"records"`
	// Matches is the number of records that matched a signature.
	Matches int `json:"matches"`
	// Definitive is the number of matches of definitive strength.
	Definitive int `json:"definitive"`
	// Skipped is the number of malformed records.
	Skipped int `json:"skipped"`
	// BySignature counts matches per signature ID.
	BySignature map[string]int `json:"bySignature"`
}

// Options controls a run.
type Options struct {
	// Output is the output form.
	Output Output
	// All prints every record, not only matches.
	All bool
}

// Run matches every record of d and writes results to w. It stops at the end
// of the input, on a fatal read or write error, or when ctx is done.
func Run(ctx context.Context, m *signature.Matcher, d Decoder, w io.Writer, opt Options) (Summary, error) {
	s := Summary{BySignature: map[string]int{}}
	bw := bufio.NewWriterSize(w, 64<<10)
	var emit func(Result, logline.Line) error
	switch opt.Output {
	case OutputJSONL:
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		emit = func(r Result, _ logline.Line) error { return enc.Encode(r) }
	case OutputText:
		t := newTable(bw)
		if err := t.row("RECORD", "SIGNATURE", "FAMILY", "CLASS", "STRENGTH", "TRUST", "ORIGIN", "MESSAGE"); err != nil {
			return s, err
		}
		emit = func(r Result, l logline.Line) error {
			msg := r.Message
			if r.Error != "" {
				msg = "skipped: " + r.Error
			} else if msg == "" {
				msg = logline.Sanitize(l.Message, 160)
			}
			sig := r.Signature
			if !r.Match {
				sig = "-"
			}
			return t.row(strconv.Itoa(r.Line), sig, dash(r.Family), dash(r.Class), dash(r.Strength), dash(r.Trust), origin(l), msg)
		}
	default:
		return s, fmt.Errorf("unknown output %q", opt.Output)
	}
	stream := m.NewStream()
	for {
		if err := ctx.Err(); err != nil {
			return s, errors.Join(err, bw.Flush())
		}
		l, n, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rerr *RecordError
		if errors.As(err, &rerr) {
			s.Records++
			s.Skipped++
			if err := emit(Result{Line: rerr.Record, Error: rerr.Err.Error()}, logline.Line{}); err != nil {
				return s, err
			}
			continue
		}
		if err != nil {
			return s, errors.Join(fmt.Errorf("reading record %d: %w", n+1, err), bw.Flush())
		}
		s.Records++
		h, ok := stream.Match(l)
		if !ok {
			if opt.All {
				if err := emit(Result{Line: n}, l); err != nil {
					return s, err
				}
			}
			continue
		}
		s.Matches++
		s.BySignature[h.Signature]++
		if h.Strength == signature.Definitive {
			s.Definitive++
		}
		if err := emit(result(n, l, h), l); err != nil {
			return s, err
		}
	}
	return s, bw.Flush()
}

// table writes the text output a row at a time, in columns of fixed widths,
// so that it streams: a tabwriter would hold every row until the end (600 MB
// for a million matches). The widths fit the built-in catalog's signature
// IDs and families and the fixed sets of classes, strengths and trusts; a
// longer cell (an extra signature, a long origin) keeps two spaces before
// the next column and shifts the rest of its row.
type table struct {
	w      *bufio.Writer
	widths []int
}

func newTable(w *bufio.Writer) *table {
	sig, fam := len("SIGNATURE"), len("FAMILY")
	for _, r := range signature.Builtin() {
		sig, fam = max(sig, len(r.ID)), max(fam, len(r.Family))
	}
	strength := max(len(signature.Definitive), len(signature.Corroborate))
	trust := max(len(logline.TrustKernel), len(logline.TrustAttributed), len(logline.TrustNone), len(logline.TrustForged))
	return &table{w: w, widths: []int{len("RECORD"), sig, fam, len(signature.ClassProcess), strength, trust, originWidth}}
}

// originWidth is the ORIGIN column: "comm[pid] uid N unit" is often longer
// and then shifts its message.
const originWidth = 32

func (t *table) row(cells ...string) error {
	for i, c := range cells {
		_, _ = t.w.WriteString(c) // a bufio.Writer keeps its first error for the next call
		if i < len(t.widths) {
			for range max(2, t.widths[i]+2-len(c)) {
				_ = t.w.WriteByte(' ')
			}
		}
	}
	return t.w.WriteByte('\n')
}

func result(n int, l logline.Line, h signature.Hit) Result {
	r := Result{
		Line:      n,
		Match:     true,
		Signature: h.Signature,
		Family:    h.Family,
		Class:     string(h.Class),
		Strength:  string(h.Strength),
		Trust:     string(h.Trust),
		Source:    string(l.Source),
		Comm:      logline.Sanitize(l.Origin.Comm, 64),
		Unit:      logline.Sanitize(l.Origin.Unit, 256),
		Cgroup:    logline.Sanitize(l.Origin.Cgroup, 512),
		Message:   logline.Sanitize(l.Message, maxMessage),
	}
	if h.Fields != (signature.Fields{}) {
		f := h.Fields
		// The cgroup comes from the message: control characters in it are
		// the writer's, sanitized as the message is.
		f.Cgroup = logline.Sanitize(f.Cgroup, 512)
		r.Fields = &f
	}
	if !l.Time.IsZero() {
		r.Time = l.Time.UTC().Format(time.RFC3339Nano)
	}
	if l.Origin.PID > 0 {
		r.PID = l.Origin.PID
	}
	if l.Origin.UID != logline.Unknown && l.Source == logline.SourceJournal {
		uid := l.Origin.UID
		r.UID = &uid
	}
	return r
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// origin renders who wrote a line, for the text table.
func origin(l logline.Line) string {
	switch {
	case l.Source == logline.SourceKmsg:
		return "kmsg facility " + strconv.Itoa(l.Facility)
	case l.Source != logline.SourceJournal:
		return "-"
	case l.Origin.Transport == "kernel":
		return "kernel facility " + strconv.Itoa(l.Facility)
	}
	s := logline.Sanitize(l.Origin.Comm, 32)
	if s == "" {
		s = "?"
	}
	if l.Origin.PID > 0 {
		s += "[" + strconv.Itoa(l.Origin.PID) + "]"
	}
	if l.Origin.UID != logline.Unknown {
		s += " uid " + strconv.Itoa(l.Origin.UID)
	}
	if l.Origin.Unit != "" {
		s += " " + logline.Sanitize(l.Origin.Unit, 64)
	}
	return s
}
