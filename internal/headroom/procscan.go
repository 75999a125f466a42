package headroom

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"

	"github.com/pidpressure/pidpressure/internal/hostfs"
)

// Scan is the result of one walk of /proc.
type Scan struct {
	// Processes and Tasks (threads) seen.
	Processes uint64 `json:"processes"`
	Tasks     uint64 `json:"tasks"`
	// Skipped counts processes that exited during the walk.
	Skipped uint64 `json:"skipped"`
	// TasksByUID counts tasks per real UID (RLIMIT_NPROC counts these).
	TasksByUID map[int]uint64 `json:"-"`
	// Zombies is the number of zombie tasks.
	Zombies uint64 `json:"zombies"`
	// ZombieParents are the parents holding zombies, most first.
	ZombieParents []ZombieParent `json:"zombie_parents"`
	// TopUsers are the real UIDs with the most tasks, most first (at most 5).
	TopUsers []UserTasks `json:"top_users"`
	// PIDByUID holds one process of each real UID seen: the process whose
	// RLIMIT_NPROC judges a failure of that UID whose own process is gone.
	PIDByUID map[int]int `json:"-"`
	// TopProcesses are the programs with the most tasks, most first (at
	// most TopProcessCount): the processes of one name together, so that
	// a fork bomb of 500 shells reads as one consumer.
	TopProcesses []ProcessTasks `json:"-"`
}

// TopProcessCount bounds Scan.TopProcesses.
const TopProcessCount = 5

// ProcessTasks is the task (thread) count of the processes of one name.
type ProcessTasks struct {
	Comm string
	// PID is the process, when there is one of that name (0 for several).
	PID       int
	Processes uint64
	Tasks     uint64
}

// UserTasks is a real UID's task count.
type UserTasks struct {
	UID   int    `json:"uid"`
	Tasks uint64 `json:"tasks"`
}

// ZombieParent is a process that has not reaped its dead children.
type ZombieParent struct {
	PID     int    `json:"pid"`
	Comm    string `json:"comm"`
	Zombies uint64 `json:"zombies"`
	Cgroup  string `json:"cgroup,omitempty"`
	Pod     *Pod   `json:"pod,omitempty"`
}

// status holds the fields of /proc/PID/status the walk needs.
type status struct {
	name    string
	state   byte
	ppid    int
	uid     int
	threads uint64
}

// parseStatus reads /proc/PID/status.
//
// Format: "Name:\tbash\nState:\tS (sleeping)\n…PPid:\t1\n…Uid:\t1000\t1000\t1000\t1000\n…Threads:\t1\n"
// (proc(5)); other lines are skipped.
func parseStatus(b []byte) (status, error) {
	st := status{uid: -1, ppid: -1}
	seen := 0
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Name":
			st.name = string(v)
			seen++
		case "State":
			if len(v) > 0 {
				st.state = v[0]
			}
			seen++
		case "PPid":
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return st, fmt.Errorf("ppid field %q: %w", v, err)
			}
			st.ppid = n
			seen++
		case "Uid":
			f := bytes.Fields(v)
			if len(f) == 0 {
				return st, fmt.Errorf("empty Uid line")
			}
			n, err := strconv.Atoi(string(f[0]))
			if err != nil {
				return st, fmt.Errorf("uid field %q: %w", f[0], err)
			}
			st.uid = n
			seen++
		case "Threads":
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return st, fmt.Errorf("threads field %q: %w", v, err)
			}
			st.threads = n
			seen++
		}
	}
	if seen < 5 {
		return st, fmt.Errorf("status has %d of the 5 fields Name, State, PPid, Uid, Threads", seen)
	}
	return st, nil
}

// Walk scans every process under the proc root. topParents bounds
// ZombieParents. Processes that vanish mid-walk are counted in Skipped; a
// malformed status file is an error returned alongside the partial scan.
func Walk(root hostfs.Root, topParents int) (Scan, error) {
	s := Scan{TasksByUID: map[int]uint64{}, PIDByUID: map[int]int{}}
	entries, err := os.ReadDir(root.Proc)
	if err != nil {
		return s, err
	}
	parents := map[int]uint64{}
	byName := map[string]ProcessTasks{}
	var errs []error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		b, err := hostfs.ReadSmall(root.ProcPath(e.Name(), "status"))
		if err != nil {
			if hostfs.Vanished(err) {
				s.Skipped++
				continue
			}
			errs = append(errs, err)
			continue
		}
		st, err := parseStatus(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("pid %d: %w", pid, err))
			continue
		}
		s.Processes++
		threads := max(st.threads, 1)
		s.Tasks += threads
		s.TasksByUID[st.uid] += threads
		if _, ok := s.PIDByUID[st.uid]; !ok && st.state != 'Z' {
			s.PIDByUID[st.uid] = pid
		}
		if st.state != 'Z' {
			p := byName[st.name]
			p.Comm, p.PID, p.Processes, p.Tasks = st.name, pid, p.Processes+1, p.Tasks+threads
			byName[st.name] = p
		}
		if st.state == 'Z' {
			s.Zombies++
			parents[st.ppid]++
		}
	}
	for _, p := range byName {
		if p.Processes > 1 {
			p.PID = 0
		}
		s.TopProcesses = keepTop(s.TopProcesses, p)
	}
	for ppid, n := range parents {
		zp := ZombieParent{PID: ppid, Zombies: n}
		if comm, err := hostfs.ReadString(root.ProcPath(strconv.Itoa(ppid), "comm")); err == nil {
			zp.Comm = comm
		}
		s.ZombieParents = append(s.ZombieParents, zp)
	}
	sort.Slice(s.ZombieParents, func(i, j int) bool {
		a, b := s.ZombieParents[i], s.ZombieParents[j]
		return a.Zombies > b.Zombies || (a.Zombies == b.Zombies && a.PID < b.PID)
	})
	if len(s.ZombieParents) > topParents {
		s.ZombieParents = s.ZombieParents[:topParents]
	}
	for uid, n := range s.TasksByUID {
		s.TopUsers = append(s.TopUsers, UserTasks{UID: uid, Tasks: n})
	}
	sort.Slice(s.TopUsers, func(i, j int) bool {
		a, b := s.TopUsers[i], s.TopUsers[j]
		return a.Tasks > b.Tasks || (a.Tasks == b.Tasks && a.UID < b.UID)
	})
	if len(s.TopUsers) > 5 {
		s.TopUsers = s.TopUsers[:5]
	}
	for i := range s.ZombieParents {
		zp := &s.ZombieParents[i]
		if cg, err := firstCgroup(root, zp.PID); err == nil {
			zp.Cgroup = cg
			zp.Pod = PodOfPath(root, cg)
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("walking %s: %d malformed status files, first: %w", root.Proc, len(errs), errs[0])
	}
	return s, nil
}

// keepTop inserts p into top, kept sorted by tasks (most first, then by
// name) and at most TopProcessCount long, without sorting every name.
func keepTop(top []ProcessTasks, p ProcessTasks) []ProcessTasks {
	less := func(a, b ProcessTasks) bool { return a.Tasks > b.Tasks || (a.Tasks == b.Tasks && a.Comm < b.Comm) }
	if len(top) == TopProcessCount && !less(p, top[len(top)-1]) {
		return top
	}
	i := sort.Search(len(top), func(i int) bool { return less(p, top[i]) })
	if len(top) < TopProcessCount {
		top = append(top, ProcessTasks{})
	}
	copy(top[i+1:], top[i:len(top)-1])
	top[i] = p
	return top
}

// firstCgroup returns a process's cgroup: the v2 path, else the v1 pids path.
func firstCgroup(root hostfs.Root, pid int) (string, error) {
	if p, err := CgroupOf(root, pid, 2); err == nil && p != "/" {
		return p, nil
	}
	return CgroupOf(root, pid, 1)
}

// TaskCount is the result of counting tasks from /proc/*/task.
type TaskCount struct {
	// Tasks is every task in the PID namespace of the proc mount.
	Tasks uint64
	// Low is the number of tasks whose TID is below ReservedPIDs.
	Low uint64
	// Above is the number of tasks whose TID is at or above the pid_max
	// counted against (taken before pid_max was lowered).
	Above uint64
	// Skipped counts processes that exited during the count.
	Skipped uint64
}

// CountTasks counts the tasks visible in the proc root by listing every
// /proc/PID/task directory: the task count of the PID namespace the proc
// mount belongs to, with those whose TID lies outside [ReservedPIDs,
// pidMax), where new PIDs no longer come from.
func CountTasks(root hostfs.Root, pidMax uint64) (TaskCount, error) {
	var c TaskCount
	entries, err := os.ReadDir(root.Proc)
	if err != nil {
		return c, err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue // not a process
		}
		ts, err := os.ReadDir(root.ProcPath(e.Name(), "task"))
		if err != nil {
			if hostfs.Vanished(err) {
				c.Skipped++
				continue
			}
			return c, err
		}
		c.Tasks += uint64(len(ts))
		for _, t := range ts {
			tid, err := strconv.ParseUint(t.Name(), 10, 64)
			switch {
			case err != nil:
			case tid < ReservedPIDs:
				c.Low++
			case tid >= pidMax:
				c.Above++
			}
		}
	}
	return c, nil
}
