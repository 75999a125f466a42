// Package logline defines the record that every log source produces and the
// matcher consumes: one message with its time, priority and the origin
// fields that the producer (the kernel or journald) set itself.
//
// The trust model (docs/architecture.md) lives here because it is a property of the
// record, not of the matcher: a line carries a kernel-trusted origin only when
// it came from /dev/kmsg with facility 0 or from the journal with
// _TRANSPORT=kernel, and its process attribution is trusted only when it came
// from journald's underscore fields. SYSLOG_IDENTIFIER is never used.
package logline
