//go:build !cgo

package journal

import (
	"context"
	"errors"
	"time"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
)

// LiveReader is unavailable without cgo: sdjournal needs it.
type LiveReader struct{}

var _ logline.Reader = (*LiveReader)(nil)

// errNoCgo is every call's error in a build without cgo.
var errNoCgo = hostfs.NotSupported(what, errors.New("built without cgo"))

// OpenLive reports hostfs.ErrNotSupported in a build without cgo.
func OpenLive(LiveOptions) (*LiveReader, error) {
	return nil, errNoCgo
}

// Next is never reached.
func (*LiveReader) Next(context.Context) (logline.Line, error) { return logline.Line{}, errNoCgo }

// Cursor is never reached.
func (*LiveReader) Cursor() (string, error) { return "", errNoCgo }

// Fill is never reached.
func (*LiveReader) Fill(*logline.Line) error { return errNoCgo }

// Context is never reached.
func (*LiveReader) Context(int) []string { return nil }

// Stats is never reached.
func (*LiveReader) Stats() LiveStats { return LiveStats{} }

// Close is never reached.
func (*LiveReader) Close() error { return nil }

// Realtime is not supported without cgo.
func (*LiveReader) Realtime() (time.Time, error) { return time.Time{}, errNoCgo }
