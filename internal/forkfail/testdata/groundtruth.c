/* groundtruth: tries to create N processes or threads, keeping each alive,
 * and counts its own EAGAINs: the number the kernel counter must equal.
 *
 *   groundtruth NAME fork|thread N [--cgroup PROCS] [--pidns PIDMAX]
 *                                  [--nproc LIMIT --uid UID] [--wait 1]
 *
 * NAME becomes the process's comm. --cgroup joins the cgroup whose
 * cgroup.procs is PROCS first. --pidns runs the loop as init of a new PID
 * namespace whose own pid_max is PIDMAX (Linux >= 6.14), checked to be
 * set before any fork: on a kernel without it the write would change the
 * host's. --nproc sets RLIMIT_NPROC and becomes UID. It prints
 * "ok=A eagain=B other=C" and exits 0, then everything it created dies.
 * --wait 1 prints "init PID" (the new namespace's init, as the host sees
 * it, with --pidns; else its own PID) and, once set up, "ready"; it reads
 * a line from standard input
 * before it starts, and keeps what it created until standard input
 * closes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static void *park(void *arg) { (void)arg; for (;;) pause(); return 0; }

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	int n = write(fd, s, strlen(s));
	close(fd);
	return n < 0 ? -1 : 0;
}

static long read_long(const char *path)
{
	char b[64] = {0};
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	int n = read(fd, b, sizeof(b) - 1);
	close(fd);
	return n > 0 ? atol(b) : -1;
}

static int wait_go;
static int quiet_ready; /* the parent says "ready" for the namespace's init */

static void hold(void)
{
	char b[64];
	while (read(0, b, sizeof(b)) > 0)
		;
}

static int loop(int threads, int n)
{
	int ok = 0, eagain = 0, other = 0;
	if (wait_go) {
		char b[64];
		if (!quiet_ready) {
			printf("ready\n");
			fflush(stdout);
		}
		if (read(0, b, sizeof(b)) <= 0)
			return 5;
	}
	pid_t *kids = calloc(n, sizeof(pid_t));
	for (int i = 0; i < n; i++) {
		int err;
		if (threads) {
			pthread_t t;
			err = pthread_create(&t, 0, park, 0);
		} else {
			pid_t p = fork();
			if (p == 0) {
				for (;;)
					pause();
			}
			err = p < 0 ? errno : 0;
			if (p > 0)
				kids[ok] = p;
		}
		if (!err)
			ok++;
		else if (err == EAGAIN)
			eagain++;
		else
			other++;
	}
	printf("ok=%d eagain=%d other=%d\n", ok, eagain, other);
	fflush(stdout);
	if (wait_go)
		hold();
	if (!threads)
		for (int i = 0; i < ok; i++) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], 0, 0);
		}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: groundtruth NAME fork|thread N [--cgroup PROCS] [--pidns PIDMAX] [--nproc LIMIT --uid UID]\n");
		return 2;
	}
	const char *name = argv[1];
	int threads = !strcmp(argv[2], "thread");
	int n = atoi(argv[3]);
	const char *procs = 0;
	long pidns = 0, nproc = 0, uid = -1;
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--cgroup"))
			procs = argv[i + 1];
		else if (!strcmp(argv[i], "--pidns"))
			pidns = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--nproc"))
			nproc = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--uid"))
			uid = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--wait"))
			wait_go = atoi(argv[i + 1]);
	}
	prctl(PR_SET_NAME, name);
	if (procs) {
		char b[32];
		snprintf(b, sizeof(b), "%d", getpid());
		if (write_file(procs, b)) {
			perror("joining the cgroup");
			return 3;
		}
	}
	if (nproc > 0) {
		struct rlimit r = {nproc, nproc};
		if (setrlimit(RLIMIT_NPROC, &r) || setgid(uid) || setuid(uid)) {
			perror("RLIMIT_NPROC");
			return 3;
		}
	}
	if (!pidns) {
		if (wait_go) {
			printf("init %d\n", getpid());
			fflush(stdout);
		}
		return loop(threads, n);
	}
	/* Before 6.14 pid_max is global: a write in the new namespace would
	 * change the host's. Refuse rather than risk it. */
	struct utsname u;
	int major = 0, minor = 0;
	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2 || major < 6 || (major == 6 && minor < 14)) {
		fprintf(stderr, "this kernel has no per-namespace pid_max (Linux >= 6.14)\n");
		return 4;
	}
	if (unshare(CLONE_NEWPID | CLONE_NEWNS)) {
		perror("unshare");
		return 3;
	}
	/* The init says it is set up through a pipe, and the parent prints
	 * "init PID" then "ready": two processes writing to one stdout would
	 * not keep that order. */
	int up[2];
	if (pipe(up)) {
		perror("pipe");
		return 3;
	}
	pid_t init = fork();
	if (init < 0) {
		perror("fork");
		return 3;
	}
	if (init == 0) {
		close(up[0]);
		char b[32];
		if (mount(0, "/", 0, MS_REC | MS_PRIVATE, 0) || mount("proc", "/proc", "proc", 0, 0)) {
			perror("mounting /proc");
			return 3;
		}
		snprintf(b, sizeof(b), "%ld", pidns);
		/* The namespace's own pid_max, or nothing: never the host's. */
		if (write_file("/proc/sys/kernel/pid_max", b) || read_long("/proc/sys/kernel/pid_max") != pidns) {
			fprintf(stderr, "this kernel has no per-namespace pid_max\n");
			return 4;
		}
		quiet_ready = 1;
		if (write(up[1], "r", 1) != 1)
			return 3;
		close(up[1]);
		return loop(threads, n);
	}
	close(up[1]);
	char r;
	if (read(up[0], &r, 1) == 1 && wait_go) {
		printf("init %d\nready\n", init);
		fflush(stdout);
	}
	int st = 0;
	waitpid(init, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
