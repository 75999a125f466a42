#!/bin/bash
# Produces real journal entries for testdata/journal: needs a running journald.
set -u
mark=pptest-$(date +%s)
logger -u /run/systemd/journal/dev-log -t "$mark" "capture start"
# 1. a bash fork loop in a full pids cgroup, stdout/stderr to the journal
cg=/sys/fs/cgroup/pids/ppjcap-bash; mkdir -p $cg; echo 12 > $cg/pids.max
( echo $BASHPID > $cg/cgroup.procs; exec timeout -s KILL 10 systemd-cat -t forkbomb bash -c 'for i in $(seq 1 30); do sleep 3 & done; wait' ) 
for p in $(cat $cg/cgroup.procs); do kill -9 $p 2>/dev/null; done; sleep 0.3; rmdir $cg
# 2. a Go program in a cgroup standing in for kubelet.service (unified + pids hierarchies)
u=/sys/fs/cgroup/unified/system.slice/kubelet.service; p=/sys/fs/cgroup/pids/system.slice/kubelet.service
mkdir -p $u $p; echo 12 > $p/pids.max
( echo $BASHPID > $u/cgroup.procs; echo $BASHPID > $p/cgroup.procs; exec timeout -s KILL 10 systemd-cat -t kubelet ./gothreads )
for q in $(cat $p/cgroup.procs); do kill -9 $q 2>/dev/null; done; sleep 0.3; rmdir $u $p; rmdir /sys/fs/cgroup/unified/system.slice /sys/fs/cgroup/pids/system.slice 2>/dev/null
# 3. a forged line: a non-root user claiming to be kubelet
setpriv --reuid=65534 --regid=65534 --clear-groups logger -u /run/systemd/journal/dev-log -t kubelet "runtime: failed to create new OS thread (have 15 already; errno=11)"
# 4. a forged kernel line written to /dev/kmsg from userspace
echo "<12>kernel: cgroup: fork rejected by pids controller in /system.slice/kubelet.service" > /dev/kmsg
setpriv --reuid=65534 --regid=65534 --clear-groups systemd-cat -t kubelet echo "runtime: failed to create new OS thread (have 15 already; errno=11)"
logger -u /run/systemd/journal/dev-log -t "$mark" "capture end"
sleep 1
echo $mark
