package hostfs

// Paths lists what the agent reads under the host root, relative to it
// ("proc" is <root>/proc), parents before what they hold. A container that
// reads the host through a root such as /host needs each of them mounted
// there from the host's /<path>. A test holds the list to the readers'
// ProcPath, SysPath and VarPath calls.
func Paths() []string {
	return []string{
		"proc",                        // tasks, limits, kernel.pid_max and threads-max, boot id
		"sys/fs/cgroup",               // pids.current, pids.max, pids.events
		"var/log/pods",                // pod names for cgroup UIDs
		"var/lib/kubelet/config.yaml", // the audit's podPidsLimit and pid.available
	}
}
