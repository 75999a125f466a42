// Package agent wires the live sources — the journal, /dev/kmsg and the
// pids.events of the cgroups that matter — to the signature matcher, and
// keeps their read positions in the state file. It is built to survive the
// failure it reports: it never forks or execs, creates the OS threads it
// needs at start-up, and delivers through bounded buffers that drop and
// count rather than block.
package agent
