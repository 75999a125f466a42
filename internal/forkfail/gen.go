package forkfail

// The BPF program is compiled by bpf2go (make generate, which needs clang
// and libbpf's headers); the objects and their Go wrappers are committed,
// so that building the agent needs neither. CI regenerates them and fails
// if they differ.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type fail_key -type fail_val -type sample -type node_settings forkfail bpf/forkfail.bpf.c
