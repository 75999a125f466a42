package replay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pidpressure/pidpressure/internal/journal"
	"github.com/pidpressure/pidpressure/internal/kmsg"
	"github.com/pidpressure/pidpressure/internal/logline"
)

// Format names an input format.
type Format string

// The input formats.
const (
	// FormatLines is plain text, one record per line.
	FormatLines Format = "lines"
	// FormatJournalJSON is journalctl -o json.
	FormatJournalJSON Format = "journal-json"
	// FormatJournalExport is journalctl -o export.
	FormatJournalExport Format = "journal-export"
	// FormatKmsg is /dev/kmsg records as "cat /dev/kmsg" saves them.
	FormatKmsg Format = "kmsg"
)

// Formats lists the input formats.
func Formats() []Format {
	return []Format{FormatLines, FormatJournalJSON, FormatJournalExport, FormatKmsg}
}

// ParseFormat returns the format called s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, 0, len(Formats()))
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown format %q: want one of %s", s, strings.Join(names, ", "))
}

// DefaultMaxRecord is the largest record a decoder keeps; longer ones are
// skipped and counted, never truncated silently.
const DefaultMaxRecord = 4 << 20

// RecordError is a record that could not be decoded. Decoding continues
// with the next record.
type RecordError struct {
	// Record is the 1-based number of the record.
	Record int
	// Err is what was wrong with it.
	Err error
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Record, e.Err) }

// Unwrap returns the underlying error.
func (e *RecordError) Unwrap() error { return e.Err }

// ErrTooLong is wrapped by the error for a record over the size limit.
var ErrTooLong = errors.New("record too long")

// Decoder reads records from saved logs.
type Decoder interface {
	// Next returns the next record as a line and its 1-based number. At the
	// end it returns io.EOF. A *RecordError concerns one record (numbered in
	// it) and Next may be called again; any other error is fatal.
	Next() (logline.Line, int, error)
}

// NewDecoder returns a decoder of format f reading r. maxRecord bounds one
// record (0 means DefaultMaxRecord); boot is the wall-clock boot time used to
// date kmsg records (zero leaves them undated). Every read from r first
// checks ctx: once ctx is done, Next returns its error (fatal), even in the
// middle of a record that never ends (an endless input such as /dev/zero
// would otherwise be skipped forever, in every format).
func NewDecoder(ctx context.Context, f Format, r io.Reader, maxRecord int, boot time.Time) (Decoder, error) {
	if maxRecord <= 0 {
		maxRecord = DefaultMaxRecord
	}
	r = ctxReader{ctx: ctx, r: r}
	switch f {
	case FormatLines:
		return &lineDecoder{r: bufio.NewReaderSize(r, 64<<10), max: maxRecord}, nil
	case FormatKmsg:
		return &kmsgDecoder{r: bufio.NewReaderSize(r, 64<<10), max: maxRecord, boot: boot}, nil
	case FormatJournalJSON:
		return &journalDecoder{next: journal.NewJSONReader(r, maxRecord).Next}, nil
	case FormatJournalExport:
		return &journalDecoder{next: journal.NewExportReader(r, maxRecord).Next}, nil
	default:
		return nil, fmt.Errorf("unknown format %q", f)
	}
}

// ctxReader stops reading when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// readLine reads one line without its newline (a final "\r" is kept: it is
// part of the record), with logline.ReadLine: a line over max bytes is
// consumed and reported as ErrTooLong.
func readLine(r *bufio.Reader, max int) (string, error) {
	b, err := logline.ReadLine(r, max)
	if errors.Is(err, logline.ErrTooLong) {
		return "", fmt.Errorf("%w: over %d bytes", ErrTooLong, max)
	}
	return string(b), err
}

type lineDecoder struct {
	r   *bufio.Reader
	max int
	n   int
}

func (d *lineDecoder) Next() (logline.Line, int, error) {
	s, err := readLine(d.r, d.max)
	if errors.Is(err, io.EOF) {
		return logline.Line{}, d.n, io.EOF
	}
	if err != nil && !errors.Is(err, ErrTooLong) {
		return logline.Line{}, d.n, err
	}
	d.n++
	if err != nil {
		return logline.Line{}, d.n, &RecordError{Record: d.n, Err: err}
	}
	l := logline.New(logline.SourceText, s)
	l.Seq = uint64(d.n)
	return l, d.n, nil
}

// kmsgDecoder groups a record's header line with the continuation lines
// (starting with a space) that follow it.
type kmsgDecoder struct {
	r      *bufio.Reader
	max    int
	boot   time.Time
	n      int
	peeked *peekedLine
}

type peekedLine struct {
	s   string
	err error
}

func (d *kmsgDecoder) read() (string, error) {
	if p := d.peeked; p != nil {
		d.peeked = nil
		return p.s, p.err
	}
	return readLine(d.r, d.max)
}

func (d *kmsgDecoder) Next() (logline.Line, int, error) {
	for {
		header, err := d.read()
		switch {
		case errors.Is(err, io.EOF):
			return logline.Line{}, d.n, io.EOF
		case errors.Is(err, ErrTooLong):
			d.n++
			return logline.Line{}, d.n, &RecordError{Record: d.n, Err: err}
		case err != nil:
			return logline.Line{}, d.n, err
		case header == "":
			continue
		}
		rec := header
		for {
			s, err := d.read()
			if err != nil || !strings.HasPrefix(s, " ") {
				d.peeked = &peekedLine{s: s, err: err} // the next record, or the end
				break
			}
			if len(rec)+len(s) < d.max {
				rec += "\n" + s
			}
		}
		d.n++
		r, err := kmsg.Parse(rec)
		if err != nil {
			return logline.Line{}, d.n, &RecordError{Record: d.n, Err: err}
		}
		return r.Line(d.boot), d.n, nil
	}
}

type journalDecoder struct {
	next func() (journal.Entry, error)
	n    int
}

func (d *journalDecoder) Next() (logline.Line, int, error) {
	e, err := d.next()
	if errors.Is(err, io.EOF) {
		return logline.Line{}, d.n, io.EOF
	}
	if err != nil && !errors.Is(err, journal.ErrMalformed) {
		return logline.Line{}, d.n, err
	}
	d.n++
	if err != nil {
		return logline.Line{}, d.n, &RecordError{Record: d.n, Err: err}
	}
	l := journal.Translate(e)
	l.Seq = uint64(d.n)
	return l, d.n, nil
}
