//go:build !cgo

package journal

import (
	"context"
	"errors"
	"time"

	"github.com/pidpressure/pidpressure/internal/hostfs"
	"github.com/pidpressure/pidpressure/internal/logline"
)

// Source is unavailable without cgo: sdjournal needs it.
type Source struct{}

var _ logline.Reader = (*Source)(nil)

// errNoCgo is every call's error in a build without cgo.
var errNoCgo = hostfs.NotSupported(what, errors.New("built without cgo"))

// OpenSource reports hostfs.ErrNotSupported in a build without cgo.
func OpenSource(SourceOptions) (*Source, error) {
	return nil, errNoCgo
}

// Next is never reached.
func (*Source) Next(context.Context) (logline.Line, error) { return logline.Line{}, errNoCgo }

// Cursor is never reached.
func (*Source) Cursor() (string, error) { return "", errNoCgo }

// Fill is never reached.
func (*Source) Fill(*logline.Line) error { return errNoCgo }

// Context is never reached.
func (*Source) Context(int) []string { return nil }

// Stats is never reached.
func (*Source) Stats() SourceStats { return SourceStats{} }

// Close is never reached.
func (*Source) Close() error { return nil }

// Realtime is not supported without cgo.
func (*Source) Realtime() (time.Time, error) { return time.Time{}, errNoCgo }
