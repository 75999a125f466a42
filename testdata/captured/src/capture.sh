#!/bin/bash
# Re-captures testdata/captured/*.txt: each program runs inside a fresh cgroup v1
# pids cgroup with a small pids.max until it fails for real, and what it prints
# is saved. Needs root and the pids controller at /sys/fs/cgroup/pids.
# Usage: capture.sh OUTDIR   (run from this directory after building the
# programs: go build gothreads.go goexec.go; gcc -pthread -o cthreads cthreads.c;
# gcc -o cfork cfork.c; javac Threads.java Procs.java; cargo build for rust_main.rs)
set -u
out=${1:?usage: capture.sh OUTDIR}
mkdir -p "$out"
run() { # NAME MAX CMD...
	local name=$1 max=$2; shift 2
	local cg=/sys/fs/cgroup/pids/ppcap-$name
	mkdir -p "$cg" && echo "$max" >"$cg/pids.max"
	( echo $BASHPID >"$cg/cgroup.procs"; exec timeout -s KILL 20 "$@" ) >"$out/$name.txt" 2>&1
	echo "$name: $(cat "$cg/pids.events")"
	for p in $(cat "$cg/cgroup.procs"); do kill -9 "$p" 2>/dev/null; done
	sleep 0.3; rmdir "$cg"
}
run go 30 ./gothreads
run gocgo 30 ./gothreads_cgo
run goexec 20 ./goexec
run cthreads 20 ./cthreads
run cfork 20 ./cfork
run bash 20 bash -c 'for i in $(seq 1 40); do sleep 5 & done; wait'
run dash 20 dash -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do sleep 5 & done; wait'
run pythreads 20 python3 pythreads.py
run pyfork 20 python3 pyfork.py
run pysub 20 python3 pysub.py
run perl 20 perl pfork.pl
run nodespawn 40 node nodespawn.js
run nodesync 40 node nodesync.js
run javathreads 60 java -Xss256k Threads
run javaprocs 60 java Procs
run rustthreads 20 ./rs
run rustspawn 20 ./rs spawn
run make 20 make -f Makefile.cap -j60
