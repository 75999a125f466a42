// Package signature holds the catalog of log signatures by which Linux
// programs report that they could not create a process or a thread, and the
// matcher that finds them in log lines.
//
// The matcher works in two stages. A literal prefilter (an Aho-Corasick
// automaton over every rule's anchor strings, ASCII case-insensitive) scans
// each line once; the large majority of lines contain no anchor and cost
// nothing more. Only for lines with an anchor are the regular expressions of
// the rules that own those anchors run, to confirm the match, extract fields
// and reject look-alikes.
//
// Errors are judged by their errno. Creating a task fails with EAGAIN when a
// PID limit binds (kernel.pid_max or kernel.threads-max, a pids cgroup's
// pids.max, RLIMIT_NPROC; see fork(2) and pthread_create(3)) and with ENOMEM
// when memory does (or, by pid_namespaces(7), in a PID namespace whose init
// has died). A line whose errno is anything but EAGAIN — ENOMEM, EINTR (task
// creation never fails with it), ENOENT, EACCES, EPROTO, … — is not a
// PID-exhaustion signal even when it names fork or a thread, and is
// rejected; a line with no errno needs corroboration.
//
// The package is pure: it reads no files and never logs.
package signature
