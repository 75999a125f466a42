package signature

import (
	"regexp"
	"strconv"
	"strings"
)

// Errno values that matter to the classification (Linux, asm-generic/errno-base.h).
const (
	errnoEINTR  = 4
	errnoECHILD = 10
	errnoEAGAIN = 11
	errnoENOMEM = 12
)

// errnoNumber finds an explicit errno number: errno=11, errno 11, error=11,
// error 11, (11: …), os error 11, code: 11, [Errno 11], System error #11,
// "return code from pthread_create() is 11".
var errnoNumber = regexp.MustCompile(`(?i)(?:\berrno\s*[=:]?\s*|\berror\s*[=:]?\s*|\(|\bos error\s+|\bcode:\s*|system error\s*#|\breturn code from \w+\(\) is\s+)(\d{1,4})(?:\)|:|,|\]|;|\s|$)`)

// errnoTexts maps strerror(3) texts and errno names to their numbers. Order
// matters only for overlapping texts; the first found in the line wins.
var errnoTexts = []struct {
	text string
	no   int
}{
	{"resource temporarily unavailable", errnoEAGAIN},
	{"resource temporarily not available", errnoEAGAIN},
	{"resource not available", errnoEAGAIN},
	{"resource unavailable", errnoEAGAIN},
	{"eagain", errnoEAGAIN},
	{"wouldblock", errnoEAGAIN},
	{"would block", errnoEAGAIN},
	{"cannot allocate memory", errnoENOMEM},
	{"enomem", errnoENOMEM},
	{"no child processes", errnoECHILD},
	{"interrupted system call", errnoEINTR},
	{"operation not permitted", 1},
	{"eperm", 1},
	{"no such file or directory", 2},
	{"enoent", 2},
	{"input/output error", 5},
	{"argument list too long", 7},
	{"e2big", 7},
	{"exec format error", 8},
	{"enoexec", 8},
	{"bad file descriptor", 9},
	{"ebadf", 9},
	{"permission denied", 13},
	{"eacces", 13},
	{"device or resource busy", 16},
	{"ebusy", 16},
	{"invalid argument", 22},
	{"einval", 22},
	{"too many open files", 24},
	{"emfile", 24},
	{"text file busy", 26},
	{"etxtbsy", 26},
	{"no space left on device", 28},
	{"enospc", 28},
	{"broken pipe", 32},
	{"epipe", 32},
	{"function not implemented", 38},
	{"enosys", 38},
	{"protocol error", 71},
	{"eproto", 71},
	{"connection refused", 111},
	{"connection reset by peer", 104},
	{"no such process", 3},
	{"esrch", 3},
	{"not a directory", 20},
	{"is a directory", 21},
	{"read-only file system", 30},
	{"too many links", 31},
	{"operation not supported", 95},
	{"paging file is too small", errnoENOMEM},
}

// errnoNames maps the errno numbers this package reports to their names.
var errnoNames = map[int]string{
	errnoEINTR:  "EINTR",
	errnoECHILD: "ECHILD",
	errnoEAGAIN: "EAGAIN",
	errnoENOMEM: "ENOMEM",
	1:           "EPERM",
	2:           "ENOENT",
	8:           "ENOEXEC",
	13:          "EACCES",
	22:          "EINVAL",
	24:          "EMFILE",
	71:          "EPROTO",
}

// ErrnoName returns the symbolic name of errno n ("EAGAIN"), or "" when this
// package does not know it.
func ErrnoName(n int) string { return errnoNames[n] }

// findErrno returns the errno that msg reports, or 0 when it reports none it
// can recognise. A strerror text wins over a bare number, because numbers in
// log lines are often not errnos. hint, when not empty, is the part of the
// message the rule pointed at (its errno or errtext group) and is tried first.
func findErrno(msg, hint string) int {
	if hint != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(hint)); err == nil {
			return n
		}
		if n := errnoFromText(strings.ToLower(hint)); n != 0 {
			return n
		}
	}
	lower := strings.ToLower(msg)
	if n := errnoFromText(lower); n != 0 {
		return n
	}
	// Several numbers can look like errnos ("Error 100: can't create Thread
	// (11)": 100 is the application's code). An errno of a failed task
	// creation (EAGAIN, ENOMEM) among them wins; otherwise the first.
	first := 0
	for _, m := range errnoNumber.FindAllStringSubmatch(msg, 8) {
		n, err := strconv.Atoi(m[1])
		if err != nil || n <= 0 || n >= 4096 {
			continue
		}
		if n == errnoEAGAIN || n == errnoENOMEM {
			return n
		}
		if first == 0 {
			first = n
		}
	}
	return first
}

func errnoFromText(lower string) int {
	best, bestAt := 0, -1
	for _, t := range errnoTexts {
		if i := strings.Index(lower, t.text); i >= 0 && (bestAt < 0 || i < bestAt) {
			best, bestAt = t.no, i
		}
	}
	return best
}
