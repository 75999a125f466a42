#!/bin/bash
# The eBPF counter's live tests and cost benchmark, in the node VM: a stock
# Debian kernel, which allows fexit, and a kernel of the VM's own, whose
# kernel.pid_max and kernel.threads-max the tests may lower. Runs as root
# from /mnt/host; the host built every program (the VM has no compiler).
set -u
cd /mnt/host
export PIDPRESSURE_NODEVM=1 PIDPRESSURE_REQUIRE_SUPPORTED=1
export PIDPRESSURE_GROUNDTRUTH=/mnt/host/groundtruth PIDPRESSURE_COST=/mnt/host/cost
# Forks are milliseconds under emulation: a twentieth of the host's rounds.
export PIDPRESSURE_COST_DIVISOR=20
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
echo "kernel=$(uname -r)"
./forkfail.test -test.v -test.count 1 -test.run '^TestCounts$'
echo "tests_rc=$?"
./forkfail.test -test.run '^$' -test.bench '^BenchmarkCost$' -test.benchtime 1x -test.v
echo "bench_rc=$?"
