#!/bin/bash
# Captures a trimmed /proc, /sys/fs/cgroup and /var of this node into
# /mnt/host/capture, in the layout of testdata/hosts: the kernel's limits,
# every cgroup of kubepods.slice and the node components' units with their
# pids files as the kernel wrote them, the processes of PID 1, the kubelet,
# containerd and (at most 6 of) each pod's, at most ten zombies of each
# parent, and the
# kubelet's pod log directories and configuration. Run by TestNode's
# scenarios, which set name (the tree's) and about (what it shows).
set -u
: "${name:?}" "${about:?}"
out=/mnt/host/capture
rm -rf "$out"
mkdir -p "$out"
declare -A made
grab() { # a file as the kernel gives it (cat: sysfs and procfs report size 0)
	local dir=$out${1%/*} # one fork per file: on a node full of zombies under TCG each one counts
	[ -n "${made[$dir]:-}" ] || { mkdir -p "$dir"; made[$dir]=1; }
	cat "$1" >"$out$1" 2>/dev/null || rm -f "$out$1"
}
for f in /proc/sys/kernel/pid_max /proc/sys/kernel/threads-max /proc/sys/kernel/ns_last_pid /proc/loadavg /proc/self/status /sys/fs/cgroup/cgroup.controllers /var/lib/kubelet/config.yaml; do
	grab "$f"
done
cgroups=$(find /sys/fs/cgroup/kubepods.slice -type d; ls -d /sys/fs/cgroup/system.slice/kubelet.service /sys/fs/cgroup/system.slice/containerd.service)
for d in $cgroups; do
	for f in pids.current pids.max pids.events pids.events.local pids.peak cgroup.procs; do
		grab "$d/$f"
	done
done
pids="1 $(systemctl show -p MainPID --value kubelet.service) $(systemctl show -p MainPID --value containerd.service)"
for d in $(find /sys/fs/cgroup/kubepods.slice -name '*.scope' -type d); do
	pids="$pids $(head -6 "$d/cgroup.procs" | tr '\n' ' ')"
done
# Zombies are in no cgroup.procs; the census finds them by their state.
# At most ten of each parent's.
pids="$pids $(awk 'FNR == 1 { z = 0 } /^State:/ { z = ($2 == "Z") } /^PPid:/ { if (z && n[$2]++ < 10) { split(FILENAME, a, "/"); print a[3] } }' /proc/[0-9]*/status 2>/dev/null | tr '\n' ' ')"
for p in $pids; do
	for f in status comm cgroup limits; do
		grab "/proc/$p/$f"
	done
	for t in /proc/"$p"/task/*; do
		grab "$t/comm"
	done
done
for d in /var/log/pods/*/*; do # the directories, with empty logs (git keeps no empty directory)
	mkdir -p "$out$d"
	: >"$out$d/0.log"
done
cat >"$out/README.md" <<README
# $name

Captured from the real node of the end-to-end tests (TestNode,
internal/e2e/testdata/node/capture.sh), not written by hand: Debian 13,
kernel $(uname -r), $(systemctl --version | head -1), containerd
$(/usr/local/bin/containerd --version | awk '{print $3}'), kubelet v1.37.2
with the systemd cgroup driver and podPidsLimit 300.

$about

Trimmed: /proc holds PID 1, the kubelet, containerd, at most six processes
of each container and at most ten zombies of each parent; every cgroup of kubepods.slice and
the kubelet's and containerd's units are there with their pids files, read
one after another while the node went on (a counter read later can be
higher).
README
echo "captured $(find "$out" -type f | wc -l) files"
