// Package replay runs the signature matcher over saved logs: plain text
// lines, journalctl's JSON and export formats, and /dev/kmsg records. It is
// what "pidpressure replay" does, and it never stops on a bad record: each
// malformed record is reported in place and counted.
package replay
