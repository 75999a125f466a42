package signature

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Class says what the failing program tried to create.
type Class string

// The classes of creation failure.
const (
	// ClassProcess is a failed fork, vfork, clone, posix_spawn or exec.
	ClassProcess Class = "process"
	// ClassThread is a failed pthread_create or clone(CLONE_THREAD).
	ClassThread Class = "thread"
)

// Strength says how much a single line proves.
type Strength string

// The strengths of a hit.
const (
	// Definitive: the line alone proves a task could not be created because
	// of a PID limit (EAGAIN, or kernel truth).
	Definitive Strength = "definitive"
	// Corroborate: the line reports a creation failure whose cause it does
	// not prove (no errno); headroom or a counter must agree.
	Corroborate Strength = "corroborate"
)

// Rule is one signature: how a program reports that it could not create a
// process or thread.
type Rule struct {
	// ID is the stable, CamelCase name of the signature.
	ID string `json:"id"`
	// Family is the kind of program that writes it (go, jvm, shell, kernel, …).
	Family string `json:"family"`
	// Class is what the program failed to create.
	Class Class `json:"class"`
	// Strength is how much one line proves.
	Strength Strength `json:"strength"`
	// Anchors are literal strings (matched ASCII case-insensitively) of which
	// at least one occurs in every line the rule matches. They feed the
	// prefilter; a rule is confirmed only on lines that contain one.
	Anchors []string `json:"anchors"`
	// Pattern is the RE2 expression that confirms the match; it is matched
	// case-insensitively. Named groups become fields: threads, errno,
	// errtext, cgroup, program, limit.
	Pattern string `json:"pattern"`
	// Reject, when set, is an RE2 expression (case-insensitive) for
	// look-alikes: a line that matches it is not this signature.
	Reject string `json:"reject,omitempty"`
	// After, when set, is an RE2 expression (case-insensitive) that one of the
	// previous lines of the same stream must match: the line alone is
	// ambiguous and its context decides (a Python traceback's last line is a
	// fork failure only below a frame that forks). Such a rule never matches
	// a line seen without context.
	After string `json:"after,omitempty"`
	// Kernel marks a message only the kernel writes; from any other known
	// origin it is a forgery.
	Kernel bool `json:"kernel,omitempty"`
	// ErrnoDecides makes the line's errno decide: EAGAIN is definitive, no
	// errno or ECHILD needs corroboration, and any other errno — ENOMEM
	// (memory) and EINTR (another call's) among them — means the line is not
	// a PID-exhaustion signal at all.
	ErrnoDecides bool `json:"errnoDecides,omitempty"`
	// Generic marks a catch-all rule; it is reported only when no specific
	// rule matched the line.
	Generic bool `json:"generic,omitempty"`
}

// Fields are the facts a hit extracted from its line. Zero values mean absent.
type Fields struct {
	// Errno is the error number the line reports (11 for EAGAIN).
	Errno int `json:"errno,omitempty"`
	// Threads is the number of threads the process had (Go's "have N already").
	Threads int `json:"threads,omitempty"`
	// Limit is a limit the line names (Go's thread limit, OpenBLAS's RLIMIT_NPROC).
	Limit int `json:"limit,omitempty"`
	// Cgroup is the cgroup path the line names (kernel pids controller).
	Cgroup string `json:"cgroup,omitempty"`
	// Program is the program or command that could not be started.
	Program string `json:"program,omitempty"`
	// Relayed says the line reports the failure of the far end of a gRPC
	// call ("rpc error: code = … desc = …" before the match): the kubelet
	// relays the container runtime's errors so, and the process that failed
	// is then not the one that logged the line.
	Relayed bool `json:"relayed,omitempty"`
}

// grpcRelay opens a gRPC error's text as a client logs it (status.Error's
// "rpc error: code = %s desc = %s").
const grpcRelay = "rpc error: code = "

// ErrRule is wrapped by every error about an invalid rule.
var ErrRule = errors.New("invalid rule")

// compiled is a rule ready to match.
type compiled struct {
	Rule
	re     *regexp.Regexp
	reject *regexp.Regexp
	after  *regexp.Regexp
	// groups indexes the submatch slice by field name; a name may be used by
	// several alternatives of a pattern.
	gThreads, gErrno, gErrtext, gCgroup, gProgram, gLimit []int
}

// groupIndexes returns the indexes of every subexpression called name.
func groupIndexes(re *regexp.Regexp, name string) []int {
	var out []int
	for i, n := range re.SubexpNames() {
		if n == name {
			out = append(out, i)
		}
	}
	return out
}

func compile(r Rule) (compiled, error) {
	var errs []error
	if r.ID == "" {
		errs = append(errs, errors.New("id: must not be empty"))
	}
	if r.Family == "" {
		errs = append(errs, errors.New("family: must not be empty"))
	}
	if r.Class != ClassProcess && r.Class != ClassThread {
		errs = append(errs, fmt.Errorf("class: %q is not %q or %q", r.Class, ClassProcess, ClassThread))
	}
	if r.Strength != Definitive && r.Strength != Corroborate {
		errs = append(errs, fmt.Errorf("strength: %q is not %q or %q", r.Strength, Definitive, Corroborate))
	}
	if len(r.Anchors) == 0 {
		errs = append(errs, errors.New("anchors: at least one is required"))
	}
	for i, a := range r.Anchors {
		if strings.TrimSpace(a) == "" {
			errs = append(errs, fmt.Errorf("anchors[%d]: must not be blank", i))
		}
	}
	c := compiled{Rule: r}
	re, err := regexp.Compile("(?i)" + r.Pattern)
	if err != nil {
		errs = append(errs, fmt.Errorf("pattern: %w", err))
	} else {
		c.re = re
	}
	if r.Reject != "" {
		rej, err := regexp.Compile("(?i)" + r.Reject)
		if err != nil {
			errs = append(errs, fmt.Errorf("reject: %w", err))
		}
		c.reject = rej
	}
	if r.After != "" {
		after, err := regexp.Compile("(?i)" + r.After)
		if err != nil {
			errs = append(errs, fmt.Errorf("after: %w", err))
		}
		c.after = after
	}
	if err := errors.Join(errs...); err != nil {
		return compiled{}, fmt.Errorf("%w %s: %w", ErrRule, r.ID, err)
	}
	c.gThreads = groupIndexes(re, "threads")
	c.gErrno = groupIndexes(re, "errno")
	c.gErrtext = groupIndexes(re, "errtext")
	c.gCgroup = groupIndexes(re, "cgroup")
	c.gProgram = groupIndexes(re, "program")
	c.gLimit = groupIndexes(re, "limit")
	return c, nil
}
