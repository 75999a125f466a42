package hostfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultMaxRead caps one ReadSmall; the largest file read this way
// (/proc/PID/status, mountinfo) is well under it.
const DefaultMaxRead = 1 << 20

// ErrTooLarge is returned for a file over the read cap.
var ErrTooLarge = errors.New("file over the read cap")

// Root locates the host's pseudo-filesystems.
type Root struct {
	// Proc is the host's /proc (e.g. /host/proc).
	Proc string
	// Sys is the host's /sys (e.g. /host/sys).
	Sys string
	// Var is the host's /var, for /var/log/pods and /var/lib/kubelet.
	Var string
}

// New returns the root for a host mounted at dir ("/" for this machine).
func New(dir string) Root {
	return Root{
		Proc: filepath.Join(dir, "proc"),
		Sys:  filepath.Join(dir, "sys"),
		Var:  filepath.Join(dir, "var"),
	}
}

// ProcPath joins elements under the proc root.
func (r Root) ProcPath(elem ...string) string {
	return filepath.Join(append([]string{r.Proc}, elem...)...)
}

// SysPath joins elements under the sys root.
func (r Root) SysPath(elem ...string) string {
	return filepath.Join(append([]string{r.Sys}, elem...)...)
}

// VarPath joins elements under the var root.
func (r Root) VarPath(elem ...string) string {
	return filepath.Join(append([]string{r.Var}, elem...)...)
}

// ReadSmall reads a whole pseudo-file of at most DefaultMaxRead bytes.
func ReadSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only
	return readCapped(f, path, DefaultMaxRead)
}

func readCapped(r io.Reader, path string, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("%s: %w (%d bytes)", path, ErrTooLarge, max)
	}
	return b, nil
}

// ReadUint reads a file holding one unsigned decimal number.
func ReadUint(path string) (uint64, error) {
	b, err := ReadSmall(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// ReadString reads a small file and trims surrounding white space.
func ReadString(path string) (string, error) {
	b, err := ReadSmall(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// File is a pseudo-file kept open and re-read from its start, which for
// /proc/loadavg and cgroup files costs one pread and no path lookup.
type File struct {
	f    *os.File
	path string
	buf  []byte
}

// OpenFile opens path for repeated reads.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &File{f: f, path: path, buf: make([]byte, 4096)}, nil
}

// Read returns the current contents (at most 4 KiB); the slice is valid until
// the next Read.
func (f *File) Read() ([]byte, error) {
	n, err := f.f.ReadAt(f.buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n == len(f.buf) {
		return nil, fmt.Errorf("%s: %w (%d bytes)", f.path, ErrTooLarge, len(f.buf))
	}
	return f.buf[:n], nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Vanished reports whether err means a task or cgroup went away while it was
// being read: the normal churn of a /proc walk, to be skipped and counted.
func Vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
