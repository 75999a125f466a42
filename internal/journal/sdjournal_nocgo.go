//go:build !cgo

package journal

import (
	"context"
	"fmt"
	"time"

	"github.com/pidpressure/pidpressure/internal/logline"
)

// Source is unavailable without cgo: sdjournal needs it.
type Source struct{}

var _ logline.Reader = (*Source)(nil)

// OpenSource reports ErrNotSupported in a build without cgo.
func OpenSource(SourceOptions) (*Source, error) {
	return nil, fmt.Errorf("%w: built without cgo", ErrNotSupported)
}

// Next is never reached.
func (*Source) Next(context.Context) (logline.Line, error) { return logline.Line{}, ErrNotSupported }

// Cursor is never reached.
func (*Source) Cursor() (string, error) { return "", ErrNotSupported }

// Fill is never reached.
func (*Source) Fill(*logline.Line) error { return ErrNotSupported }

// Context is never reached.
func (*Source) Context(int) []string { return nil }

// Stats is never reached.
func (*Source) Stats() SourceStats { return SourceStats{} }

// Close is never reached.
func (*Source) Close() error { return nil }

// Realtime is not supported without cgo.
func (*Source) Realtime() (time.Time, error) { return time.Time{}, ErrNotSupported }
