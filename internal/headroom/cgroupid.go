package headroom

import (
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"k8s.io/utils/clock"
)

// maxCgroupIDs bounds the directories CgroupIDs remembers and walks.
const maxCgroupIDs = 65536

// CgroupIDs turns cgroup ids — the kernel's kernfs ids, which are the
// inode numbers of the cgroups' directories, as BPF reports them — into
// paths, as in /proc/PID/cgroup. It walks a hierarchy at most once per
// second, when asked for an id it has not seen; it is safe for concurrent
// use.
type CgroupIDs struct {
	mu     sync.Mutex
	h      Hierarchy
	paths  map[uint64]string
	walked time.Time
	clock  clock.PassiveClock
}

// NewCgroupIDs resolves the ids of hierarchy h; clk paces its walks.
func NewCgroupIDs(h Hierarchy, clk clock.PassiveClock) *CgroupIDs {
	return &CgroupIDs{h: h, paths: map[uint64]string{}, clock: clk}
}

// Path returns the path of the cgroup whose id is id, or false if no
// directory of the hierarchy has it (a cgroup removed since, or another
// hierarchy's).
func (c *CgroupIDs) Path(id uint64) (string, bool) {
	if id == 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.paths[id]; ok {
		return p, true
	}
	if now := c.clock.Now(); c.walked.IsZero() || now.Sub(c.walked) >= time.Second {
		c.walked = now
		c.walk()
	}
	p, ok := c.paths[id]
	return p, ok
}

// walk lists the hierarchy's directories afresh.
func (c *CgroupIDs) walk() {
	paths := map[uint64]string{}
	_ = filepath.WalkDir(c.h.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // a cgroup removed during the walk is skipped
		}
		if !d.IsDir() {
			return nil
		}
		if len(paths) >= maxCgroupIDs {
			return filepath.SkipAll
		}
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil {
			return nil
		}
		rel, err := filepath.Rel(c.h.Dir, p)
		if err != nil {
			return nil //nolint:nilerr // cannot happen for a path under the walked root
		}
		paths[st.Ino] = "/" + filepath.ToSlash(rel)
		if rel == "." {
			paths[st.Ino] = "/"
		}
		return nil
	})
	c.paths = paths
}
