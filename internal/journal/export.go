package journal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pidpressure/pidpressure/internal/logline"
)

// ErrMalformed is wrapped by every error about an entry that is not in the
// format being read. The reader can go on to the next entry after it.
var ErrMalformed = errors.New("malformed journal entry")

// DefaultMaxField bounds one field value (and one JSON record) that a reader
// keeps in memory; journald itself caps a field at 64 MiB.
const DefaultMaxField = 4 << 20

// ExportReader reads entries in the journal export format:
//
//	__CURSOR=s=…;i=1
//	__REALTIME_TIMESTAMP=1732960800000000
//	MESSAGE=fork: retry: Resource temporarily unavailable
//	BINARY_FIELD
//	<64-bit little-endian length><bytes>
//	(blank line)
//
// Fields are "NAME=value" lines, or the name alone on a line followed by the
// value's length and its bytes when the value is binary; entries end with a
// blank line (https://systemd.io/JOURNAL_EXPORT_FORMATS/).
//
// A binary field's length is checked before it is believed. One over the
// reader's limit and journald's own cap ([maxExportField]) cannot be true;
// a value up to [peekMax] is looked at before it is consumed, and one not
// followed by "\n" has a corrupt length. Either makes the entry malformed,
// and the reader resynchronises at the next entry boundary (an empty line)
// from just after the field's name, so that no entry after it is lost. A
// longer value is read (or, over the limit, skipped) whole, since it may
// contain "\n\n"; if no "\n" follows it, the entry is malformed and
// reading resumes at the next boundary after it.
type ExportReader struct {
	r        *bufio.Reader
	maxField int
	eof      bool
}

const (
	// maxExportField is the largest field value journald writes; a binary
	// length over it (and over the reader's limit) cannot be true.
	maxExportField = 64 << 20
	// peekMax is the longest binary value checked before it is consumed;
	// exportBuffer is four times more, so that the look-ahead refills the
	// buffer rarely, whatever the input.
	peekMax      = 64 << 10
	exportBuffer = 4 * peekMax
)

// NewExportReader returns a reader of export-format entries from r; a field
// value over maxField bytes makes its entry malformed (0 means DefaultMaxField).
func NewExportReader(r io.Reader, maxField int) *ExportReader {
	if maxField <= 0 {
		maxField = DefaultMaxField
	}
	return &ExportReader{r: bufio.NewReaderSize(r, exportBuffer), maxField: maxField}
}

// Next returns the next entry, or io.EOF after the last. An error wrapping
// [ErrMalformed] concerns one entry only: the reader has skipped to the end
// of it and Next may be called again. Any other error is from the
// underlying reader.
func (x *ExportReader) Next() (Entry, error) {
	if x.eof {
		return nil, io.EOF
	}
	e := Entry{}
	var bad error
	empty := true
	for {
		line, err := logline.ReadLine(x.r, x.maxField)
		if errors.Is(err, io.EOF) {
			x.eof = true
			if empty {
				return nil, io.EOF
			}
			return finish(e, bad)
		}
		if errors.Is(err, logline.ErrTooLong) {
			bad = cmpErr(bad, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, x.maxField))
			empty = false
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			if empty {
				continue // extra blank lines between entries
			}
			return finish(e, bad)
		}
		empty = false
		if name, value, ok := bytes.Cut(line, []byte{'='}); ok {
			e[string(name)] = string(value)
			continue
		}
		// A binary field: the name, then a little-endian uint64 length.
		name := string(line)
		value, err := x.binary(clipName(line))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				return nil, err
			}
			if errors.As(err, new(resyncError)) {
				return x.resync(bad, err)
			}
			bad = cmpErr(bad, err)
			continue
		}
		e[name] = value
	}
}

// resyncError is a malformed binary field after which the entry cannot be
// read on: the reader must look for the next entry boundary.
type resyncError struct{ err error }

func (e resyncError) Error() string { return e.err.Error() }
func (e resyncError) Unwrap() error { return e.err }

// binary reads the length and value of a binary field named name.
func (x *ExportReader) binary(name string) (string, error) {
	size, err := x.r.Peek(8)
	if len(size) < 8 {
		if !isEnd(err) {
			return "", err
		}
		return "", resyncError{fmt.Errorf("%w: field %s: truncated length", ErrMalformed, name)}
	}
	n := binary.LittleEndian.Uint64(size)
	switch {
	case n > uint64(max(x.maxField, maxExportField)):
		return "", resyncError{fmt.Errorf("%w: field %s: corrupt length %d", ErrMalformed, name, n)}
	case n <= uint64(min(x.maxField, peekMax)):
		p, err := x.r.Peek(8 + int(n) + 1)
		switch {
		case len(p) == 8+int(n) && isEnd(err):
			// The value ends the input: a missing newline loses nothing.
		case len(p) < 8+int(n)+1:
			if !isEnd(err) {
				return "", err
			}
			return "", resyncError{fmt.Errorf("%w: field %s: truncated value", ErrMalformed, name)}
		case p[8+n] != '\n':
			return "", resyncError{fmt.Errorf("%w: field %s: no newline after the %d-byte value", ErrMalformed, name, n)}
		}
		v := string(p[8 : 8+n])
		_, _ = x.r.Discard(len(p)) // peeked: cannot fail
		return v, nil
	}
	_, _ = x.r.Discard(8) // peeked
	var v []byte
	if n > uint64(x.maxField) {
		// Skip the value without holding it.
		if _, err := io.CopyN(io.Discard, x.r, int64(n)); err != nil {
			if !isEnd(err) {
				return "", err
			}
			x.eof = true
			return "", fmt.Errorf("%w: field %s: truncated value", ErrMalformed, name)
		}
	} else {
		v = make([]byte, n)
		if _, err := io.ReadFull(x.r, v); err != nil {
			if !isEnd(err) {
				return "", err
			}
			x.eof = true
			return "", fmt.Errorf("%w: field %s: truncated value", ErrMalformed, name)
		}
	}
	if b, err := x.r.ReadByte(); err == nil && b != '\n' {
		_ = x.r.UnreadByte()
		return "", resyncError{fmt.Errorf("%w: field %s: no newline after the %d-byte value", ErrMalformed, name, n)}
	}
	if n > uint64(x.maxField) {
		return "", fmt.Errorf("%w: field %s is %d bytes, over the %d-byte limit", ErrMalformed, name, n, x.maxField)
	}
	return string(v), nil
}

// resync ends the current entry as malformed (by bad, or else by err) and
// skips to the next entry boundary, an empty line, so that the next call
// starts at the next entry.
func (x *ExportReader) resync(bad, err error) (Entry, error) {
	for {
		line, rerr := logline.ReadLine(x.r, x.maxField)
		if errors.Is(rerr, io.EOF) {
			x.eof = true
			break
		}
		if rerr != nil && !errors.Is(rerr, logline.ErrTooLong) {
			return nil, rerr
		}
		if rerr == nil && len(line) == 0 {
			break
		}
	}
	return nil, cmpErr(bad, err)
}

// isEnd reports whether err is the end of the input, cutting a field short.
func isEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func finish(e Entry, bad error) (Entry, error) {
	if bad != nil {
		return nil, bad
	}
	return e, nil
}

func cmpErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

func clipName(b []byte) string {
	return logline.Clip(strings.ToValidUTF8(string(b), "?"), 64)
}

// JSONReader reads entries written by journalctl -o json: one object per
// line, values as strings, as arrays of byte values (binary or invalid
// UTF-8), as null (a value journalctl left out), or as an array of those
// when a field repeats (the first value is kept).
type JSONReader struct {
	r   *bufio.Reader
	max int
}

// NewJSONReader returns a reader of JSON entries from r; a record over max
// bytes is malformed (0 means DefaultMaxField).
func NewJSONReader(r io.Reader, max int) *JSONReader {
	if max <= 0 {
		max = DefaultMaxField
	}
	return &JSONReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next entry, or io.EOF after the last. An error wrapping
// [ErrMalformed] concerns that record only; Next may be called again.
// Blank lines are not records.
func (j *JSONReader) Next() (Entry, error) {
	for {
		line, err := logline.ReadLine(j.r, j.max)
		if errors.Is(err, logline.ErrTooLong) {
			return nil, fmt.Errorf("%w: record longer than %d bytes", ErrMalformed, j.max)
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return parseJSONEntry(line)
	}
}

func parseJSONEntry(line []byte) (Entry, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	e := make(Entry, len(raw))
	for k, v := range raw {
		s, ok, err := jsonValue(v)
		if err != nil {
			return nil, fmt.Errorf("%w: field %s: %w", ErrMalformed, clipName([]byte(k)), err)
		}
		if ok {
			e[k] = s
		}
	}
	return e, nil
}

// jsonValue decodes one field value; ok is false for null.
func jsonValue(v json.RawMessage) (string, bool, error) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0 || bytes.Equal(v, []byte("null")):
		return "", false, nil
	case v[0] == '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err == nil, err
	case v[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return "", false, err
		}
		if len(items) == 0 {
			return "", true, nil
		}
		first := bytes.TrimSpace(items[0])
		if len(first) > 0 && (first[0] == '"' || first[0] == '[' || first[0] == 'n') {
			return jsonValue(first) // a repeated field: keep the first value
		}
		var b []byte
		for _, it := range items {
			var n uint8
			if err := json.Unmarshal(it, &n); err != nil {
				return "", false, fmt.Errorf("byte array: %w", err)
			}
			b = append(b, n)
		}
		return string(b), true, nil
	default:
		// journalctl writes strings; accept a bare number too.
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return "", false, fmt.Errorf("value is neither string, byte array nor null")
		}
		return n.String(), true, nil
	}
}
