// Package headroom samples how many more tasks (processes and threads) a
// node can create, at every layer that can refuse one:
//
//   - node: kernel.pid_max (/proc/sys/kernel/pid_max, per PID namespace since
//     Linux 6.14) and kernel.threads-max (/proc/sys/kernel/threads-max),
//     against the task count (/proc/loadavg, or a walk of /proc/*/task when
//     the sampler is not in the initial PID namespace);
//   - cgroup: pids.max against pids.current, with pids.events ("max N": forks
//     refused) and pids.peak, cgroup v1 and v2 (Documentation/admin-guide/
//     cgroup-v2.rst "PID", cgroup-v1/pids.rst); a systemd unit's TasksMax is
//     its cgroup's pids.max;
//   - user: RLIMIT_NPROC (/proc/PID/limits, "Max processes") against the
//     tasks of the same real UID (setrlimit(2));
//   - zombies: tasks in state Z and the parents not reaping them.
//
// Cheap layers are read from files kept open; walks of /proc happen only on
// request and skip (and count) tasks that exit mid-walk. Everything is read
// through a hostfs.Root. Samplers never log; they return data and errors.
package headroom
