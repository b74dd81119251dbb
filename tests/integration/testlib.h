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

#endif
