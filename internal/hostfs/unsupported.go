package hostfs

import "errors"

// ErrNotSupported is what every error about something this host does not
// have, or does not let the agent use, matches with errors.Is: no journal,
// no /dev/kmsg, no pids controller, no eBPF. A source or layer that fails
// with it is left off for good, and the others carry on; any other error is
// worth a retry. It is the one such sentinel: the readers wrap it (in a
// *NotSupportedError, or with %w).
var ErrNotSupported = errors.New("not supported on this host")

// NotSupportedError says what is not supported here and why. errors.Is
// matches it with ErrNotSupported, and errors.Unwrap gives the cause.
type NotSupportedError struct {
	// What is not supported: "journal", "kmsg", "eBPF fork-failure counter".
	What string
	// Err is why.
	Err error
}

// NotSupported returns a *NotSupportedError for what, because of err.
func NotSupported(what string, err error) error {
	return &NotSupportedError{What: what, Err: err}
}

// Error is "<what> not supported: <why>".
func (e *NotSupportedError) Error() string { return e.What + " not supported: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *NotSupportedError) Unwrap() error { return e.Err }

// Is matches ErrNotSupported.
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }
