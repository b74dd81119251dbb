/* SPDX-License-Identifier: MIT */
/*
 * Small helpers for the integration test programs that run against real
 * sockets: checks that count, time, sockets with timeouts, sending, and the
 * go-ahead signal a driving script gives.
 */
#ifndef PPBPF_TESTLIB_H
#define PPBPF_TESTLIB_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int t_failures, t_checks;

/* A check that counts, and says where it failed; the program goes on. */
#define CHECK(cond, ...) t_check((cond), __FILE__, __LINE__, __VA_ARGS__)

static inline void t_check(bool ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	t_checks++;
	if (ok)
		return;
	t_failures++;
	fprintf(stderr, "FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* "<what>: N checks, M failed" and the exit status: 0 only if some check ran and none failed. */
static inline int t_summary(const char *what)
{
	printf("%s: %d checks, %d failed\n", what, t_checks, t_failures);
	return t_checks && !t_failures ? 0 : 1;
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Receive and send timeouts: no blocking call of a test waits for ever. */
static inline void set_timeout(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* An IPv4 or IPv6 socket address from text and a port. */
static inline socklen_t t_sockaddr(struct sockaddr_storage *ss, const char *addr, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((unsigned short)port);
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		return sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((unsigned short)port);
		inet_pton(AF_INET, addr, &a->sin_addr);
		return sizeof(*a);
	}
}

/* 0, or -errno (a reset shows as -ECONNRESET). */
static inline int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read exactly n bytes (or until EOF, an error or the socket's timeout). Returns how many came. */
static inline size_t recv_all(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, (char *)p + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/*
 * A driving script's "go on": SIGUSR1. Blocked first, in this thread and
 * those it creates next, so that none of them is killed by it.
 */
static inline void block_go_ahead(void)
{
	sigset_t usr1;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
}

/* Wait at most `seconds` for the go-ahead. */
static inline bool wait_go_ahead(int seconds)
{
	struct timespec wait = { seconds, 0 };
	sigset_t usr1;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	return sigtimedwait(&usr1, NULL, &wait) == SIGUSR1;
}

/*
 * A program whose script runs it one mode at a time, `PROG MODE ARGS...`: the
 * modes are its cases (`PROG --list` prints them, the script's
 * PPBPF_TEST_CASE names one: lib.sh).
 */
struct test_mode {
	const char *name;
	const char *args;       /* what it takes, for the usage line */
	int min_args, max_args; /* how many */
	int (*run)(char **args); /* 0, or a failure's exit status; argv-like, NULL after the last */
};

static inline void t_usage(const char *prog, const struct test_mode *modes, size_t n)
{
	fprintf(stderr, "usage: %s --list | MODE ARGS, one of:\n", prog);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "  %s %s %s\n", prog, modes[i].name, modes[i].args);
}

/* main(): `PROG --list`, or the mode argv[1] names; the exit status (2: a usage error). */
static inline int t_run_mode(int argc, char **argv, const char *prog, const struct test_mode *modes, size_t n)
{
	const struct test_mode *m = NULL;
	int rc;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", modes[i].name);
		return 0;
	}
	for (size_t i = 0; argc > 1 && i < n; i++)
		if (!strcmp(modes[i].name, argv[1]))
			m = &modes[i];
	if (!m || argc - 2 < m->min_args || argc - 2 > m->max_args) {
		t_usage(prog, modes, n);
		return 2;
	}
	rc = m->run(argv + 2);
	if (rc)
		return rc;
	if (!t_checks)
		fprintf(stderr, "FAIL: %s checked nothing\n", m->name);
	return t_summary(m->name);
}

#define T_RUN_MODE(argc, argv, prog, modes) t_run_mode((argc), (argv), (prog), (modes), sizeof(modes) / sizeof((modes)[0]))

#endif
