/*
 * workload: the programs the node VM's pods run, one static binary (built
 * with gcc -static on the host; the images hold nothing else). Each mode
 * fails the way real programs do and says so in their words.
 *
 *   workload pause             the pod sandbox: waits for SIGTERM
 *   workload threads TRIGGER   when TRIGGER holds "go", creates threads
 *                              until pthread_create fails, then holds them
 *                              and tries again every second; tries no more
 *                              while TRIGGER holds "hold"; exits when it
 *                              holds "stop"
 *   workload fork              forks children that wait, until fork fails,
 *                              and keeps trying every 200 ms
 *   workload sleep             waits and never reaps its children: the
 *                              container's init, where orphans become zombies
 *   workload zombies RATE      forks RATE children a second, which exit at
 *                              once and are never reaped, until fork fails
 *   workload probe [N]         an exec probe that leaves N orphans (1) behind,
 *                              which exit at once and, never reaped by the
 *                              container's init, stay zombies
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) {
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static void stop(int sig) {
	(void)sig;
	_exit(0);
}

/* The trigger's first word, or "" if it cannot be read. */
static void trigger(const char *path, char *word) {
	word[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fscanf(f, "%15s", word) != 1)
		word[0] = 0;
	fclose(f);
}

static void *hold(void *arg) {
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void threads(const char *path) {
	char word[16];
	for (;;) {
		trigger(path, word);
		if (strcmp(word, "go") == 0)
			break;
		nap(50);
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	long made = 0, failed = 0;
	for (;;) {
		pthread_t t;
		int err = pthread_create(&t, &attr, hold, NULL);
		if (err == 0) {
			made++;
			continue;
		}
		if (failed++ == 0)
			printf("first_failure=%.3f threads=%ld\n", now(), made);
		printf("pthread_create failed: %s\n", strerror(err));
		fflush(stdout);
		/* A second between tries, longer while TRIGGER holds "hold". */
		for (int i = 0;; i++) {
			trigger(path, word);
			if (strcmp(word, "stop") == 0) {
				printf("released after %ld threads, %ld failures\n", made, failed);
				fflush(stdout);
				_exit(0);
			}
			if (i >= 10 && strcmp(word, "hold") != 0)
				break;
			nap(100);
		}
	}
}

static void forks(void) {
	long made = 0, failed = 0;
	for (;;) {
		pid_t pid = fork();
		if (pid == 0) {
			for (;;)
				pause();
		}
		if (pid > 0) {
			made++;
			continue;
		}
		if (failed++ % 25 == 0) {
			printf("fork failed: %s (%ld children, %ld failures)\n", strerror(errno), made, failed);
			fflush(stdout);
		}
		nap(200);
	}
}

static void zombies(int rate) {
	for (;;) {
		for (int i = 0; i < rate; i++) {
			if (fork() == 0)
				_exit(0);
		}
		nap(1000);
	}
}

static int probe(int n) {
	for (int i = 0; i < n; i++) {
		pid_t child = fork();
		if (child < 0) {
			perror("fork");
			return 1;
		}
		if (child == 0) {
			/* The grandchild outlives its parent by a moment, then exits
			 * as an orphan of the container's init. */
			if (fork() == 0) {
				nap(20);
				_exit(0);
			}
			_exit(0);
		}
		waitpid(child, NULL, 0);
	}
	return 0;
}

int main(int argc, char **argv) {
	signal(SIGTERM, stop);
	signal(SIGINT, stop);
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *mode = argc > 1 ? argv[1] : "pause";
	if (strcmp(mode, "pause") == 0 || strcmp(mode, "sleep") == 0) {
		for (;;)
			pause();
	}
	if (strcmp(mode, "threads") == 0 && argc > 2)
		threads(argv[2]);
	if (strcmp(mode, "fork") == 0)
		forks();
	if (strcmp(mode, "zombies") == 0 && argc > 2)
		zombies(atoi(argv[2]));
	if (strcmp(mode, "probe") == 0)
		return probe(argc > 2 ? atoi(argv[2]) : 1);
	fprintf(stderr, "usage: workload pause|sleep|threads TRIGGER|fork|zombies RATE|probe [N]\n");
	return 2;
}
