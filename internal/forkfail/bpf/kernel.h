/* The few kernel types the fork-failure counter reads, declared for CO-RE:
 * each field is relocated against the running kernel's BTF at load time, so
 * only the names matter here, not the layout. Nothing else of the kernel's
 * headers is needed to build the program. */
#ifndef PIDPRESSURE_KERNEL_H
#define PIDPRESSURE_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;

/* uapi: the map types and flags used */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};
enum {
	BPF_RB_NO_WAKEUP = 1,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};

/* uapi: bpf_get_ns_current_pid_tgid's answer */
struct bpf_pidns_info {
	__u32 pid;
	__u32 tgid;
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
	s64 counter;
} atomic64_t;
typedef struct {
	long counter;
} atomic_long_t;
typedef struct {
	unsigned int val;
} kuid_t;

struct kernfs_node {
	u64 id;
};
struct cgroup {
	struct kernfs_node *kn;
};
struct cgroup_subsys_state {
	struct cgroup *cgroup;
	struct cgroup_subsys_state *parent;
};
struct css_set {
	struct cgroup_subsys_state *subsys[0];
};
enum cgroup_subsys_id {
	pids_cgrp_id = 0,
};

/* The pids controller's state. Its limit is an atomic64_t on current
 * kernels and was a plain int64_t before: both flavours are declared, and
 * the one the kernel has is read. */
struct pids_cgroup {
	struct cgroup_subsys_state css;
	atomic64_t counter;
	atomic64_t limit;
};
struct pids_cgroup___plain {
	s64 limit;
};

struct ns_common {
	unsigned int inum;
};
struct pid_namespace {
	unsigned int pid_allocated;
	unsigned int level;
	int pid_max; /* per namespace since 6.14; the host's sysctl before */
	struct pid_namespace *parent;
	struct ns_common ns;
};
struct nsproxy {
	struct pid_namespace *pid_ns_for_children;
};

enum rlimit_type {
	UCOUNT_RLIMIT_NPROC = 0,
};
struct ucounts {
	atomic_long_t rlimit[0];
};
struct cred {
	kuid_t uid;
	struct ucounts *ucounts;
};
struct rlimit {
	unsigned long rlim_cur;
	unsigned long rlim_max;
};
struct signal_struct {
	struct rlimit rlim[16];
};

struct task_struct {
	int pid;
	int tgid;
	const struct cred *real_cred;
	struct nsproxy *nsproxy;
	struct css_set *cgroups;
	struct signal_struct *signal;
};

struct kernel_clone_args {
	u64 flags;
};

#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long di; /* a syscall's first argument */
};
#define SYSCALL_ARG1(regs) BPF_CORE_READ(regs, di)
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs {
	u64 orig_x0; /* x0 holds the return value at exit */
};
#define SYSCALL_ARG1(regs) BPF_CORE_READ(regs, orig_x0)
#else
#error "unsupported target architecture"
#endif

#pragma clang attribute pop

#endif
