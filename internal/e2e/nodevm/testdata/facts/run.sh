#!/bin/bash
# Facts about the node that pidpressure relies on, printed as key=value
# lines for TestNodeVMFacts. Runs as root in the node VM, from /mnt/host.
set -u
kv() { printf '%s=%s\n' "$1" "$2"; }
# max N of a pids.events file, or "absent".
maxev() { if [ -e "$1" ]; then awk '$1 == "max" {print $2}' "$1"; else echo absent; fi; }

kv kernel "$(uname -r)"
kv pid1 "$(cat /proc/1/comm)"
kv cgroup_fs "$(awk '$2 == "/sys/fs/cgroup" {print $3}' /proc/self/mounts)"
kv cgroup_opts "$(awk '$2 == "/sys/fs/cgroup" {print $4}' /proc/self/mounts)"
kv controllers "$(cat /sys/fs/cgroup/cgroup.controllers)"
kv system_slice_controllers "$(cat /sys/fs/cgroup/system.slice/cgroup.controllers)"

slice=/sys/fs/cgroup/system.slice
self=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
kv self_cgroup "${self#/sys/fs/cgroup}"
kv slice_events_before "$(maxev $slice/pids.events)"
kv slice_events_local_before "$(maxev $slice/pids.events.local)"
kv self_events_before "$(maxev "$self/pids.events")"

# A transient unit at TasksMax=20 whose perl forks until refused; it prints
# its own cgroup's files while its children still hold their tasks.
systemd-run --quiet --wait --collect --pipe --unit=pidprobe.service \
	--property=TasksMax=20 /usr/bin/perl /mnt/host/forkloop.pl 100
kv probe_rc $?
kv slice_events_after "$(maxev $slice/pids.events)"
kv slice_events_local_after "$(maxev $slice/pids.events.local)"
dmesg --notime | grep 'fork rejected by pids controller' | sed 's/^/kmsg=/'

# The guest's own kernel.pid_max lowered until bash's fork loop is refused.
perl /mnt/host/pidmax.pl 500
kv pidmax_rc $?
kv self_events_after "$(maxev "$self/pids.events")"
