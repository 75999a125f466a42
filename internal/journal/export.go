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
type ExportReader struct {
	r        *bufio.Reader
	maxField int
	eof      bool
}

// NewExportReader returns a reader of export-format entries from r; a field
// value over maxField bytes makes its entry malformed (0 means DefaultMaxField).
func NewExportReader(r io.Reader, maxField int) *ExportReader {
	if maxField <= 0 {
		maxField = DefaultMaxField
	}
	return &ExportReader{r: bufio.NewReaderSize(r, 64<<10), maxField: maxField}
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
		line, err := readLine(x.r, x.maxField)
		if errors.Is(err, io.EOF) {
			x.eof = true
			if empty {
				return nil, io.EOF
			}
			return finish(e, bad)
		}
		if errors.Is(err, errTooLong) {
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
		var size [8]byte
		if _, err := io.ReadFull(x.r, size[:]); err != nil {
			x.eof = true
			return finish(e, cmpErr(bad, fmt.Errorf("%w: field %s: truncated length", ErrMalformed, clipName(line))))
		}
		n := binary.LittleEndian.Uint64(size[:])
		if n > uint64(x.maxField) {
			// Skip the value without holding it; the next line is the newline after it.
			if _, err := io.CopyN(io.Discard, x.r, int64(min(n, 1<<62))); err != nil {
				x.eof = true
			}
			bad = cmpErr(bad, fmt.Errorf("%w: field %s is %d bytes, over the %d-byte limit", ErrMalformed, clipName(line), n, x.maxField))
		} else {
			buf := make([]byte, n)
			if _, err := io.ReadFull(x.r, buf); err != nil {
				x.eof = true
				return finish(e, cmpErr(bad, fmt.Errorf("%w: field %s: truncated value", ErrMalformed, clipName(line))))
			}
			e[string(line)] = string(buf)
		}
		if b, err := x.r.ReadByte(); err == nil && b != '\n' {
			_ = x.r.UnreadByte()
			bad = cmpErr(bad, fmt.Errorf("%w: field %s: no newline after the value", ErrMalformed, clipName(line)))
		}
	}
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
	const max = 64
	s := strings.ToValidUTF8(string(b), "?")
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

var errTooLong = errors.New("line too long")

// readLine reads one '\n'-terminated line without the newline. A line over
// max bytes is consumed whole and reported as errTooLong. At the end of input
// it returns the last unterminated line, then io.EOF.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, errTooLong
			}
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if tooLong {
				return nil, errTooLong
			}
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return buf, nil
		default:
			return nil, err
		}
	}
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
		line, err := readLine(j.r, j.max)
		if errors.Is(err, errTooLong) {
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
