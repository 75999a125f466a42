#!/bin/bash
# Captures a trimmed /proc, /sys/fs/cgroup and /var of this node into
# /mnt/host/capture, in the layout of testdata/hosts: the kernel's limits,
# every cgroup of kubepods.slice and the node components' units with their
# pids files as the kernel wrote them, the processes of PID 1, the kubelet,
# containerd and (at most 6 of) each pod's, and the kubelet's pod log
# directories and configuration. Run by TestNode/PodAtItsLimit.
set -u
out=/mnt/host/capture
rm -rf "$out"
mkdir -p "$out"
grab() { # a file as the kernel gives it (cat: sysfs and procfs report size 0)
	mkdir -p "$out$(dirname "$1")"
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
# cgroupv2-node-vm-pod-at-limit

Captured from the real node of the end-to-end tests (TestNode/PodAtItsLimit,
internal/e2e/testdata/node/capture.sh), not written by hand: Debian 13,
kernel $(uname -r), $(systemctl --version | head -1), containerd
$(/usr/local/bin/containerd --version | awk '{print $3}'), kubelet v1.37.2
with the systemd cgroup driver and podPidsLimit 300.

Pod default/forker forks until its pod's pids.max (300) refuses. The kernel
counts each refusal in the pod's pids.events.local and, hierarchically, in
pids.events of the pod and of every slice above it. Trimmed: /proc holds
PID 1, the kubelet, containerd and at most six processes of each container;
every cgroup of kubepods.slice is there with its pids files. The files were
read one after another while the pod went on being refused: a counter read
later is higher (kubepods.slice was read first).
README
echo "captured $(find "$out" -type f | wc -l) files"
