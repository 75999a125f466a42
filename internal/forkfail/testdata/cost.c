/* cost: what a workload pays per operation, in nanoseconds, measured
 * inside the process (its own start-up excluded).
 *
 *   cost fork N     fork, _exit in the child, waitpid: N times
 *   cost getppid N  the cheapest system call: N times
 *   cost read N     a 1-byte read of /dev/zero: N times
 *
 * It prints "ns=X". The benchmarks run it with and without the counter
 * attached, in alternating rounds, and report the ratio. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: cost fork|getppid|read N\n");
		return 2;
	}
	long n = atol(argv[2]);
	char b;
	int fd = open("/dev/zero", O_RDONLY);
	double start = now();
	if (!strcmp(argv[1], "fork")) {
		for (long i = 0; i < n; i++) {
			pid_t p = fork();
			if (p == 0)
				_exit(0);
			if (p < 0) {
				perror("fork");
				return 1;
			}
			waitpid(p, 0, 0);
		}
	} else if (!strcmp(argv[1], "getppid")) {
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid); /* not cached by the C library */
	} else if (!strcmp(argv[1], "read")) {
		for (long i = 0; i < n; i++)
			if (read(fd, &b, 1) != 1)
				return 1;
	} else {
		return 2;
	}
	printf("ns=%.2f\n", (now() - start) / n);
	return 0;
}
