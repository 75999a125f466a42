// SPDX-License-Identifier: GPL-2.0
/* pidpressure's fork-failure counter: counts every process or thread
 * creation the kernel refuses with EAGAIN, by process, cgroup and the limit
 * that refused it, in bounded maps that the agent drains.
 *
 * Two ways in, one counter:
 * - fexit on copy_process (and fentry/fexit on what it calls, for an exact
 *   label), where the kernel allows tracing programs: no cost to any other
 *   system call;
 * - the exit tracepoints of clone, clone3, fork and vfork otherwise: they
 *   put every system call of every thread on the slow path while enabled.
 *
 * The limit is named by what the kernel was doing (fexit) or, on the
 * tracepoints, by looking right after the failure at each limit that can
 * refuse: the user's RLIMIT_NPROC, the PID namespaces' pid_max, the pids
 * cgroups' pids.max. threads-max cannot be read from here: the agent names
 * it by comparing the node's thread count with it. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define EAGAIN 11
#define CLONE_THREAD 0x00010000
#define RLIMIT_NPROC 6
#define RLIM_INFINITY (~0UL)
#define RESERVED_PIDS 300
#define PIDNS_ADDING (1U << 31)
#define PIDS_MAX_LIMIT (4 * 1024 * 1024) /* PID_MAX_LIMIT on 64-bit */
#define MAX_LEVELS 8
#define SAMPLE_GAP_NS 100000000ULL /* one sample per key per 100 ms */

/* The limit that refused; the numbering is the agent's (forkfail.Limit). */
enum {
	LIMIT_UNKNOWN = 0,
	LIMIT_PID_MAX = 1,
	LIMIT_THREADS_MAX = 2,
	LIMIT_CGROUP = 3,
	LIMIT_NPROC = 4,
	LIMITS = 5,
};

enum {
	CLASS_PROCESS = 0,
	CLASS_THREAD = 1,
};

/* totals: one exact counter per limit and class, and the losses of the
 * detail maps. Nothing ever deletes these. */
enum {
	TOTAL_FAILS = 0,             /* + limit*2 + class */
	TOTAL_KEYS_FULL = LIMITS * 2, /* failures the keyed map had no room for */
	TOTALS,
};

struct fail_key {
	u32 tgid;
	u32 limit;
	u32 class;
	u32 uid;
	u32 pidns;         /* the refusing namespace for pid_max, else the forker's */
	u32 pad;
	u64 cgroup;        /* the forker's cgroup v2 id */
	u64 pids_cgroup;   /* the forker's pids cgroup (v1 or v2) */
	u64 refusing;      /* for cgroup: the pids cgroup whose pids.max refused */
	char comm[16];
};

struct fail_val {
	u64 count;         /* failures since the key was created */
	u64 last_ns;       /* when the last was sampled */
	u32 last_tid;
	u32 pad;
	s64 used;          /* at the refusing limit, when last seen */
	s64 max;
};

struct sample {
	struct fail_key key;
	u32 tid;
	u32 pad;
	u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fail_key);
	__type(value, struct fail_val);
} fails SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TOTALS);
	__type(key, u32);
	__type(value, u64);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} samples SEC(".maps");

/* settings[0], written by the agent. */
struct node_settings {
	/* the node's kernel.pid_max, for kernels whose PID namespaces do not
	 * carry their own (before 6.14) */
	s64 host_pid_max;
	/* the agent's PID namespace (its nsfs device and inode): the PIDs it
	 * reports are as that namespace numbers them, as /proc shows them */
	u64 ns_dev;
	u64 ns_ino;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct node_settings);
} settings SEC(".maps");

/* inflight: what copy_process reached, per thread, for fexit's label. */
struct inflight {
	u32 reached_sched; /* sched_fork was entered: past RLIMIT_NPROC and threads-max */
	u32 limit;         /* set by alloc_pid's or the pids controller's refusal */
	u32 pidns;
	u32 pad;
	u64 refusing;
	s64 used, max;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct inflight);
} inflight SEC(".maps");

/* Force the types the agent reads into the object's BTF. */
const struct sample *unused_sample __attribute__((unused));
const struct node_settings *unused_settings __attribute__((unused));

static __always_inline void bump(u32 idx)
{
	u64 *v = bpf_map_lookup_elem(&totals, &idx);
	if (v)
		*v += 1; /* per CPU: no other writer */
}

static __always_inline struct cgroup_subsys_state *pids_css(struct css_set *cs)
{
	struct cgroup_subsys_state *css = 0;
	if (!cs || !bpf_core_enum_value_exists(enum cgroup_subsys_id, pids_cgrp_id))
		return 0;
	int idx = bpf_core_enum_value(enum cgroup_subsys_id, pids_cgrp_id);
	if (idx < 0 || idx >= 32)
		return 0;
	void *arr = (void *)cs + bpf_core_field_offset(struct css_set, subsys);
	bpf_probe_read_kernel(&css, sizeof(css), arr + idx * sizeof(void *));
	return css;
}

static __always_inline u64 css_id(struct cgroup_subsys_state *css)
{
	if (!css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

static __always_inline s64 pids_limit(struct cgroup_subsys_state *css)
{
	if (bpf_core_field_exists(struct pids_cgroup, limit))
		return BPF_CORE_READ((struct pids_cgroup *)css, limit.counter);
	return BPF_CORE_READ((struct pids_cgroup___plain *)css, limit);
}

/* by_nproc: the user's process count at its RLIMIT_NPROC (root is exempt). */
static __always_inline int by_nproc(struct task_struct *t, struct fail_key *k, struct fail_val *v)
{
	const struct cred *cred = BPF_CORE_READ(t, real_cred);
	k->uid = BPF_CORE_READ(cred, uid.val);
	if (k->uid == 0)
		return 0;
	struct ucounts *uc = BPF_CORE_READ(cred, ucounts);
	long cnt = 0;
	int ui = bpf_core_enum_value(enum rlimit_type, UCOUNT_RLIMIT_NPROC);
	if (!uc || ui < 0 || ui > 8)
		return 0;
	void *rl = (void *)uc + bpf_core_field_offset(struct ucounts, rlimit);
	bpf_probe_read_kernel(&cnt, sizeof(cnt), rl + ui * sizeof(atomic_long_t));
	struct rlimit r = {};
	void *rlim = (void *)BPF_CORE_READ(t, signal) + bpf_core_field_offset(struct signal_struct, rlim);
	bpf_probe_read_kernel(&r, sizeof(r), rlim + RLIMIT_NPROC * sizeof(struct rlimit));
	if (r.rlim_cur == RLIM_INFINITY || (unsigned long)cnt < r.rlim_cur)
		return 0;
	v->used = cnt;
	v->max = (s64)r.rlim_cur;
	return 1;
}

/* by_pid_max: a PID namespace on the new task's chain with no PID left.
 * alloc_pid takes PIDs from [1, pid_max) until they first pass
 * RESERVED_PIDS, then from [RESERVED_PIDS, pid_max): a namespace can only
 * refuse with at least pid_max - RESERVED_PIDS allocated. */
static __always_inline int by_pid_max(struct task_struct *t, struct fail_key *k, struct fail_val *v)
{
	struct pid_namespace *ns = BPF_CORE_READ(t, nsproxy, pid_ns_for_children);
	u32 zero = 0;
	struct node_settings *set = bpf_map_lookup_elem(&settings, &zero);
	for (int i = 0; i < MAX_LEVELS && ns; i++) {
		s64 alloc = BPF_CORE_READ(ns, pid_allocated) & ~PIDNS_ADDING;
		s64 pmax = 0;
		if (bpf_core_field_exists(ns->pid_max))
			pmax = BPF_CORE_READ(ns, pid_max);
		else if (set)
			pmax = set->host_pid_max;
		if (pmax > RESERVED_PIDS && alloc >= pmax - RESERVED_PIDS) {
			k->pidns = BPF_CORE_READ(ns, ns.inum);
			v->used = alloc;
			v->max = pmax;
			return 1;
		}
		ns = BPF_CORE_READ(ns, parent);
	}
	return 0;
}

/* by_cgroup: the deepest pids cgroup at its pids.max, as pids_try_charge
 * walks them (it took back its charge, so the counter stands at the limit). */
static __always_inline int by_cgroup(struct css_set *cs, struct fail_key *k, struct fail_val *v)
{
	struct cgroup_subsys_state *css = pids_css(cs);
	for (int i = 0; i < MAX_LEVELS && css; i++) {
		struct cgroup_subsys_state *parent = BPF_CORE_READ(css, parent);
		if (!parent)
			break; /* the root has no limit */
		s64 lim = pids_limit(css);
		s64 cnt = BPF_CORE_READ((struct pids_cgroup *)css, counter.counter);
		if (lim < PIDS_MAX_LIMIT && cnt >= lim) {
			k->refusing = css_id(css);
			v->used = cnt;
			v->max = lim;
			return 1;
		}
		css = parent;
	}
	return 0;
}

/* record counts one failure of the current thread under k. */
static __always_inline void record(struct fail_key *k, struct fail_val *seen)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	u64 pt = bpf_get_current_pid_tgid();
	u64 now = bpf_ktime_get_ns();
	u32 zero = 0;
	struct node_settings *set = bpf_map_lookup_elem(&settings, &zero);
	k->tgid = pt >> 32;
	if (set && set->ns_ino) {
		/* as the agent's namespace numbers it, when the forker is in it */
		struct bpf_pidns_info ns = {};
		if (bpf_get_ns_current_pid_tgid(set->ns_dev, set->ns_ino, &ns, sizeof(ns)) == 0) {
			k->tgid = ns.tgid;
			pt = ((u64)ns.tgid << 32) | ns.pid;
		}
	}
	k->cgroup = bpf_get_current_cgroup_id();
	k->pids_cgroup = css_id(pids_css(BPF_CORE_READ(t, cgroups)));
	if (k->limit != LIMIT_PID_MAX)
		k->pidns = BPF_CORE_READ(t, nsproxy, pid_ns_for_children, ns.inum);
	bpf_get_current_comm(k->comm, sizeof(k->comm));

	int sample = 0;
	struct fail_val *v = bpf_map_lookup_elem(&fails, k);
	if (!v) {
		struct fail_val nv = {.used = seen->used, .max = seen->max};
		/* BPF_NOEXIST: of two CPUs creating the key, one wins and both
		 * count on the winner's entry */
		bpf_map_update_elem(&fails, k, &nv, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&fails, k);
	}
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		v->last_tid = (u32)pt;
		v->used = seen->used;
		v->max = seen->max;
		if (now - v->last_ns >= SAMPLE_GAP_NS) {
			v->last_ns = now;
			sample = 1;
		}
	} else {
		bump(TOTAL_KEYS_FULL);
		sample = 1;
	}
	/* The exact total comes after the keyed count: a reader that reads the
	 * totals first never finds a total the keys have not caught up with. */
	bump(TOTAL_FAILS + k->limit * 2 + k->class);
	if (!sample)
		return;
	/* A sample the ring has no room for is not needed: the ring is full
	 * of ones the agent has yet to read, and the counts are in the maps. */
	struct sample *s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);
	if (!s)
		return;
	s->key = *k;
	s->tid = (u32)pt;
	s->ns = now;
	bpf_ringbuf_submit(s, 0);
}

/* ---- the exit tracepoints of the four creating system calls ---- */

struct sys_exit_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	s64 ret;
};

static __always_inline int on_exit(struct sys_exit_ctx *ctx, int may_thread, int clone3)
{
	if (ctx->ret != -EAGAIN)
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct fail_key k = {};
	struct fail_val seen = {};
	if (may_thread) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
		u64 flags = SYSCALL_ARG1(regs);
		if (clone3) {
			u64 uflags = 0;
			/* struct clone_args starts with its flags */
			bpf_probe_read_user(&uflags, sizeof(uflags), (void *)flags);
			flags = uflags;
		}
		if (flags & CLONE_THREAD)
			k.class = CLASS_THREAD;
	}
	/* copy_process checks them in this order */
	if (by_nproc(t, &k, &seen))
		k.limit = LIMIT_NPROC;
	else if (by_pid_max(t, &k, &seen))
		k.limit = LIMIT_PID_MAX;
	else if (by_cgroup(BPF_CORE_READ(t, cgroups), &k, &seen))
		k.limit = LIMIT_CGROUP;
	record(&k, &seen);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_clone")
int exit_clone(struct sys_exit_ctx *ctx) { return on_exit(ctx, 1, 0); }

SEC("tracepoint/syscalls/sys_exit_clone3")
int exit_clone3(struct sys_exit_ctx *ctx) { return on_exit(ctx, 1, 1); }

SEC("tracepoint/syscalls/sys_exit_fork")
int exit_fork(struct sys_exit_ctx *ctx) { return on_exit(ctx, 0, 0); }

SEC("tracepoint/syscalls/sys_exit_vfork")
int exit_vfork(struct sys_exit_ctx *ctx) { return on_exit(ctx, 0, 0); }

/* ---- fexit on the kernel's fork path ---- */

SEC("fentry/copy_process")
int enter_copy_process(u64 *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct inflight in = {};
	bpf_map_update_elem(&inflight, &tid, &in, BPF_ANY);
	return 0;
}

SEC("fentry/sched_fork")
int enter_sched_fork(u64 *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
	if (in)
		in->reached_sched = 1;
	return 0;
}

/* alloc_pid(struct pid_namespace *ns, pid_t *set_tid, size_t set_tid_size) */
SEC("fexit/alloc_pid")
int exit_alloc_pid(u64 *ctx)
{
	long ret = (long)ctx[3];
	if (ret != -EAGAIN)
		return 0;
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
	if (!in)
		return 0;
	/* which level of the chain had no PID left */
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct fail_key k = {};
	struct fail_val seen = {};
	in->limit = LIMIT_PID_MAX;
	if (by_pid_max(t, &k, &seen)) {
		in->pidns = k.pidns;
		in->used = seen.used;
		in->max = seen.max;
	} else {
		in->pidns = BPF_CORE_READ((struct pid_namespace *)ctx[0], ns.inum);
	}
	return 0;
}

/* pids_can_fork(struct task_struct *task, struct css_set *cset) */
SEC("fexit/pids_can_fork")
int exit_pids_can_fork(u64 *ctx)
{
	int ret = (int)ctx[2];
	if (ret != -EAGAIN)
		return 0;
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
	if (!in)
		return 0;
	struct css_set *cs = (struct css_set *)ctx[1];
	if (!cs)
		cs = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), cgroups);
	struct fail_key k = {};
	struct fail_val seen = {};
	in->limit = LIMIT_CGROUP;
	if (by_cgroup(cs, &k, &seen)) {
		in->refusing = k.refusing;
		in->used = seen.used;
		in->max = seen.max;
	}
	return 0;
}

/* copy_process(struct pid *pid, int trace, int node, struct kernel_clone_args *args) */
SEC("fexit/copy_process")
int exit_copy_process(u64 *ctx)
{
	long ret = (long)ctx[4];
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
	if (ret != -EAGAIN) {
		if (in)
			bpf_map_delete_elem(&inflight, &tid);
		return 0;
	}
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct kernel_clone_args *args = (struct kernel_clone_args *)ctx[3];
	struct fail_key k = {};
	struct fail_val seen = {};
	if (BPF_CORE_READ(args, flags) & CLONE_THREAD)
		k.class = CLASS_THREAD;
	if (in && in->limit) {
		k.limit = in->limit;
		k.pidns = in->pidns;
		k.refusing = in->refusing;
		seen.used = in->used;
		seen.max = in->max;
	} else if (in && !in->reached_sched) {
		/* refused before sched_fork: RLIMIT_NPROC or threads-max */
		k.limit = by_nproc(t, &k, &seen) ? LIMIT_NPROC : LIMIT_THREADS_MAX;
	}
	if (in)
		bpf_map_delete_elem(&inflight, &tid);
	record(&k, &seen);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
