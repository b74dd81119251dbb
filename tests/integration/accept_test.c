// SPDX-License-Identifier: MIT
/*
 * ppbpf_accept and ppbpf_wait at their edges, on real sockets (run by
 * accept.sh, one mode per setting):
 *
 *   kernel    the kernel side attached, no daemon: peers that close before
 *             their header is whole (a health check's connect + close, a
 *             partial header then FIN) must end the wait at once or at the
 *             timeout, with little CPU; the ESTALE path must not be weaker
 *             than the port's policy
 *   daemon    the same under `ppbpf run`, and optional ports with
 *             server-first protocols: a trusted peer that sends nothing gets
 *             the server's greeting once the kernel says plain
 *   fallback  nothing attached: the userspace fallback honours a header only
 *             from the sources it was told to trust, and ends its wait on a
 *             FIN or at the timeout
 *
 * Every case runs the library call in a child process with a deadline: a
 * call that hangs or spins is killed and fails the case, with the CPU time
 * it burned (getrusage). Headers use the documentation ranges; traffic is
 * on loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <bpf/bpf.h>
#include <ppbpf/ppbpf.h>
#include "../unit/cases.h"

/* ---- configuration from accept.sh ---------------------------------------------------- */

static struct {
	int port_req;      /* required, trust loopback, --timeout 0 (never) */
	int port_opt;      /* optional, trust loopback, --timeout OPT_TIMEOUT_MS */
	int port_opt_long; /* optional, trust loopback, --timeout 5000 */
	int port_v2;       /* required, trust loopback, --versions 2 --max-header 64 */
	const char *pin_dir;
} cfg;

/* accept.sh gives the optional port this header timeout. */
#define OPT_TIMEOUT_MS 300
/* and the daemon this sweep interval */
#define SWEEP_MS 50
/*
 * The earliest a verdict of the port's timeout may come, timed from the
 * call: the timeout runs from the connection's establishment, which comes
 * before the call starts in its own process (tens of ms before, under
 * qemu's TCG). Well after a verdict that came at once.
 */
#define PORT_TIMEOUT_FLOOR_MS (OPT_TIMEOUT_MS - 50)
/* A case's library call is killed after its timeout plus this: a hang fails fast. */
#define HANG_SLACK_MS 2500
/*
 * CPU a wait may use: a little, and at most 5% of the time it waited. A spin
 * burns all of it. "A little" is more under qemu's TCG (PPBPF_GUEST, set by
 * scripts/vm-test.sh), where one short call was seen to take 48 ms of CPU.
 */
#define CPU_BUDGET_MS(wall) ((getenv("PPBPF_GUEST") ? 150 : 20) + (wall) / 20)

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static long tv_ms(const struct timeval *tv)
{
	return tv->tv_sec * 1000L + tv->tv_usec / 1000;
}

static long cpu_ms(const struct rusage *ru)
{
	return tv_ms(&ru->ru_utime) + tv_ms(&ru->ru_stime);
}

/* ---- sockets ----------------------------------------------------------------------------- */

/* Listeners of the running test, closed by teardown when a check jumps out. */
static int open_fds[16], n_open_fds;

static int track_fd(int fd)
{
	if (fd >= 0 && n_open_fds < 16)
		open_fds[n_open_fds++] = fd;
	return fd;
}

static void untrack_close(int fd)
{
	for (int i = 0; i < n_open_fds; i++)
		if (open_fds[i] == fd)
			open_fds[i] = open_fds[--n_open_fds];
	close(fd);
}

static int make_listener(int port, int v6, int nonblock)
{
	int one = 1, fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
				    .sin6_addr = IN6ADDR_ANY_INIT }; /* dual stack */
	struct timeval stuck = { 10, 0 };

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (v6 ? bind(fd, (struct sockaddr *)&in6, sizeof(in6)) : bind(fd, (struct sockaddr *)&in, sizeof(in)))
		fail_msg("bind port %d: %s", port, strerror(errno));
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &stuck, sizeof(stuck)), 0);
	if (nonblock)
		assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	return track_fd(fd);
}

/* A client connected to port from `from` (IPv4 text, or "::1" for IPv6), TCP_NODELAY. */
static int dial(int port, const char *from)
{
	int v6 = from && strchr(from, ':'), one = 1;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct timeval stuck = { 10, 0 };

	assert_true(fd >= 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &stuck, sizeof(stuck));
	if (v6) {
		if (connect(fd, (struct sockaddr *)&in6, sizeof(in6)))
			fail_msg("connect [::1]:%d: %s", port, strerror(errno));
		return fd;
	}
	if (from) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		inet_pton(AF_INET, from, &src.sin_addr);
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)))
			fail_msg("bind to %s: %s", from, strerror(errno));
	}
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&in, sizeof(in)))
		fail_msg("connect 127.0.0.1:%d: %s", port, strerror(errno));
	return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			fail_msg("send: %s", strerror(errno));
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

static void endpoint_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(out, cap, "%s:%u", a, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(out, cap, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		snprintf(out, cap, "family %d", ss->ss_family);
	}
}

/* ---- headers -------------------------------------------------------------------------------- */

static const char V1_FULL[] = "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n";
static const char V1_NO_CRLF[] = "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443";
static const char V1_PREFIX[] = "PROXY ";
static const char V2_SIG10[] = "\r\n\r\n\0\r\nQUI"; /* 10 bytes of the v2 signature */

/* A v2 TCP4 header (192.0.2.1:51000 -> 198.51.100.2:443) with `tlv_bytes` bytes of a NOOP TLV. */
static int build_v2(unsigned char *out, size_t cap, size_t tlv_bytes)
{
	static unsigned char pad[1024];
	struct ppbpf_tlv t = { PPBPF_TLV_NOOP, (uint16_t)tlv_bytes, pad };
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
				 .src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 2 },
				 .src_port = 51000, .dst_port = 443, .tlvs = &t, .n_tlvs = tlv_bytes ? 1 : 0 };
	int n = ppbpf_build(&b, out, cap);

	assert_true(n > 0);
	return n;
}

/* ---- one bounded call --------------------------------------------------------------------- */

enum call { CALL_ACCEPT, CALL_WAIT };

/* What the server side does, in a child process. */
struct server {
	enum call call;
	int lfd;
	int timeout_ms;          /* for ppbpf_accept (0: its default) or ppbpf_wait */
	const char *env_trust;   /* PPBPF_FALLBACK_TRUST for the call; NULL: unset */
	int no_fallback;
	int set_trust;           /* give opts.fallback_trust = trust */
	const char *trust;
	const char *greeting;    /* sent once the connection is returned */
};

/* What it saw, reported to the parent. */
struct outcome {
	int hung;                /* killed at the deadline: the call never returned */
	int rc;                  /* ppbpf_accept: 0 (a connection) or -errno; ppbpf_wait: its return */
	struct ppbpf_info info;
	char orig[80];           /* ppbpf_accept's original source */
	struct ppbpf_accept_stats delta;
	long wall_ms, cpu_ms;
	size_t n;                /* stream bytes read after the call, up to EOF (and after the greeting) */
	unsigned char data[512];
};

static void read_stream(int fd, struct outcome *o)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (o->n < sizeof(o->data) && poll(&p, 1, 500) == 1) {
		ssize_t r = recv(fd, o->data + o->n, sizeof(o->data) - o->n, 0);

		if (r <= 0)
			break;
		o->n += (size_t)r;
		if (memchr(o->data, '\n', o->n) && o->n >= 2 && o->data[o->n - 1] == '\n')
			break; /* a whole line: the client's answer to a greeting, or a request */
	}
}

static void child_main(const struct server *s, int report)
{
	struct outcome o = { 0 };
	struct pollfd p = { .fd = s->lfd, .events = POLLIN };
	struct ppbpf_accept_stats before, after;
	struct rusage ru0, ru1;
	long t0;
	int fd = -1;

	if (s->env_trust)
		setenv("PPBPF_FALLBACK_TRUST", s->env_trust, 1);
	else
		unsetenv("PPBPF_FALLBACK_TRUST");
	if (poll(&p, 1, 3000) != 1) { /* a connection is queued */
		o.rc = -ENOTCONN;
		goto out;
	}
	ppbpf_accept_stats(&before);
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_ms();
	if (s->call == CALL_ACCEPT) {
		struct sockaddr_storage orig = { 0 };
		socklen_t olen = sizeof(orig);
		struct ppbpf_accept_opts opts = { .timeout_ms = s->timeout_ms, .info = &o.info,
						  .no_fallback = s->no_fallback };

		if (s->set_trust)
			opts.fallback_trust = s->trust;

		fd = ppbpf_accept_opts(s->lfd, (struct sockaddr *)&orig, &olen, SOCK_CLOEXEC, &opts);
		o.rc = fd < 0 ? -errno : 0;
		if (fd >= 0)
			endpoint_text(&orig, o.orig, sizeof(o.orig));
	} else {
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		o.rc = fd < 0 ? -errno : ppbpf_wait(fd, s->timeout_ms, &o.info);
	}
	o.wall_ms = now_ms() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	o.cpu_ms = cpu_ms(&ru1) - cpu_ms(&ru0);
	ppbpf_accept_stats(&after);
	o.delta.kernel = after.kernel - before.kernel;
	o.delta.userspace = after.userspace - before.userspace;
	o.delta.plain = after.plain - before.plain;
	o.delta.rejected = after.rejected - before.rejected;
	o.delta.timed_out = after.timed_out - before.timed_out;
	if (fd >= 0 && s->call == CALL_ACCEPT) {
		if (s->greeting)
			send(fd, s->greeting, strlen(s->greeting), MSG_NOSIGNAL);
		read_stream(fd, &o);
	}
out:
	if (write(report, &o, sizeof(o)) != sizeof(o))
		_exit(3);
	if (fd >= 0)
		close(fd);
	_exit(0);
}

/*
 * Start the server side's call in a child; the caller plays the client meanwhile,
 * then collects the outcome with finish().
 */
struct running {
	pid_t pid;
	int pipe;
	long started, limit_ms;
};

static struct running start(const struct server *s)
{
	int p[2];
	struct running r;

	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	r.pid = fork();
	assert_true(r.pid >= 0);
	if (r.pid == 0) {
		/* only the listener and the report: a client socket kept open here would never send its FIN */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != s->lfd && fd != p[1])
				close(fd);
		child_main(s, p[1]);
	}
	close(p[1]);
	r.pipe = p[0];
	r.started = now_ms();
	r.limit_ms = (s->timeout_ms > 0 ? s->timeout_ms : PPBPF_ACCEPT_TIMEOUT_MS) + HANG_SLACK_MS;
	return r;
}

static void finish(struct running *r, struct outcome *o)
{
	struct pollfd p = { .fd = r->pipe, .events = POLLIN };
	long left = r->started + r->limit_ms - now_ms();
	struct rusage ru;
	int status;

	memset(o, 0, sizeof(*o));
	if (poll(&p, 1, left > 0 ? (int)left : 0) == 1 && read(r->pipe, o, sizeof(*o)) == sizeof(*o)) {
		waitpid(r->pid, &status, 0);
	} else { /* still in the call: it hangs (or spins) */
		kill(r->pid, SIGKILL);
		wait4(r->pid, &status, 0, &ru);
		o->hung = 1;
		o->rc = -EINPROGRESS;
		o->wall_ms = now_ms() - r->started;
		o->cpu_ms = cpu_ms(&ru);
	}
	close(r->pipe);
}

/* ---- checks ---------------------------------------------------------------------------------- */

static int failures;

static void failed(const char *what, const char *fmt, ...)
{
	va_list ap;

	failures++;
	printf("  FAIL %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A return code as text ("-ECONNRESET"); two at a time in one printf. */
static const char *rc_text(int rc)
{
	static char bufs[2][64];
	static int turn;
	char *buf = bufs[turn++ & 1];

	if (rc == -EINPROGRESS)
		return "hung (killed)";
	if (!rc)
		return "0";
	snprintf(buf, sizeof(bufs[0]), "-%s", strerrorname_np(-rc) ? strerrorname_np(-rc) : "?");
	return buf;
}

/*
 * The common checks: the call returned (not killed), with rc, within
 * [min_ms, max_ms], using little CPU. One summary line per case.
 */
static void expect_call(const char *what, const struct outcome *o, int rc, long min_ms, long max_ms)
{
	printf("  %-62s rc %-14s wall %5ld ms  cpu %4ld ms  state %d\n", what, rc_text(o->rc), o->wall_ms,
	       o->cpu_ms, o->info.state);
	if (o->hung) {
		failed(what, "still in the call after %ld ms, %ld ms of CPU burned", o->wall_ms, o->cpu_ms);
		return;
	}
	if (o->rc != rc)
		failed(what, "returned %s, want %s", rc_text(o->rc), rc_text(rc));
	if (o->wall_ms < min_ms || o->wall_ms > max_ms)
		failed(what, "returned after %ld ms, want %ld..%ld ms", o->wall_ms, min_ms, max_ms);
	if (o->cpu_ms > CPU_BUDGET_MS(o->wall_ms))
		failed(what, "used %ld ms of CPU in %ld ms (budget %ld ms)", o->cpu_ms, o->wall_ms,
		       CPU_BUDGET_MS(o->wall_ms));
}

static void expect_stat(const char *what, const char *name, unsigned long got, unsigned long want)
{
	if (got != want)
		failed(what, "stats.%s moved by %lu, want %lu", name, got, want);
}

static void end_group(void)
{
	int n = failures;

	failures = 0;
	if (n)
		fail_msg("%d check(s) failed (above)", n);
}

static int teardown(void **state)
{
	(void)state;
	while (n_open_fds)
		close(open_fds[--n_open_fds]);
	failures = 0;
	return 0;
}

/* ---- peers that close before their header is whole ------------------------------------------ */

enum peer_act {
	ACT_CLOSE,       /* connect, close: a TCP health check, `nc -z`, a kubelet tcpSocket probe */
	ACT_SEND_FIN,    /* connect, send bytes, shutdown(SHUT_WR): `printf ... | nc -N` */
};

struct fin_case {
	const char *name;
	enum peer_act act;
	const char *bytes;
	size_t len;
	int late;        /* act 200 ms after the server's call began (else before) */
};

#define BYTES(s) s, sizeof(s) - 1

static const struct fin_case fin_cases[] = {
	{ "connect + close", ACT_CLOSE, NULL, 0, 0 },
	{ "connect, close 200 ms into the wait", ACT_CLOSE, NULL, 0, 1 },
	{ "'PROXY ' then FIN", ACT_SEND_FIN, BYTES(V1_PREFIX), 0 },
	{ "'PROXY ' then FIN 200 ms into the wait", ACT_SEND_FIN, BYTES(V1_PREFIX), 1 },
	{ "v1 line without CRLF then FIN", ACT_SEND_FIN, BYTES(V1_NO_CRLF), 0 },
	{ "10 bytes of the v2 signature then FIN", ACT_SEND_FIN, BYTES(V2_SIG10), 0 },
};
#define N_FIN_CASES (sizeof(fin_cases) / sizeof(fin_cases[0]))

/* The peer of a FIN case acts: sends its bytes and shuts down its side, or closes. Returns what stays open. */
static int fin_peer_act(const struct fin_case *c, int fd)
{
	if (c->act == ACT_SEND_FIN) {
		send_all(fd, c->bytes, c->len);
		shutdown(fd, SHUT_WR);
		return fd; /* kept open, as nc -N does, until the server closes */
	}
	close(fd);
	return -1;
}

/*
 * One FIN case against ppbpf_accept (a non-blocking listener, so that closing
 * the connection returns EAGAIN instead of waiting for the next) or
 * ppbpf_wait. `held`: the kernel side holds the partial header's bytes (and
 * so TCP never delivers the FIN behind them): the wait ends at the timeout.
 */
static void run_fin_case(const struct fin_case *c, int port, enum call call, int timeout_ms, int held,
			 const char *env_trust)
{
	struct server s = { .call = call, .timeout_ms = timeout_ms, .env_trust = env_trust };
	char what[160];
	struct running r;
	struct outcome o;
	int cfd, at_timeout = held && c->act == ACT_SEND_FIN;
	long min = 0, max;

	snprintf(what, sizeof(what), "%s: %s", call == CALL_ACCEPT ? "ppbpf_accept" : "ppbpf_wait", c->name);
	s.lfd = make_listener(port, 0, call == CALL_ACCEPT);
	cfd = dial(port, NULL); /* queued: the call starts at once */
	if (!c->late) {
		cfd = fin_peer_act(c, cfd);
		sleep_ms(20); /* everything has arrived before the call */
	}
	r = start(&s);
	if (c->late) {
		sleep_ms(200);
		cfd = fin_peer_act(c, cfd);
	}
	finish(&r, &o);
	/*
	 * A peer that closed before its header was whole: ECONNRESET at once
	 * (ppbpf_wait), the connection closed and not returned (ppbpf_accept:
	 * then EAGAIN from the non-blocking listener). Where the kernel holds
	 * the partial header back, the FIN behind it never arrives: the timeout.
	 */
	/*
	 * A late act comes 200 ms after start() returns, and the call's clock
	 * starts in its own process a little after that (under qemu's TCG, 11 ms
	 * was seen): 100 ms proves the call waited for the peer.
	 */
	if (at_timeout)
		min = timeout_ms - 10, max = timeout_ms + 400;
	else
		min = c->late ? 100 : 0, max = (c->late ? 200 : 0) + 400;
	if (call == CALL_WAIT) {
		expect_call(what, &o, at_timeout ? -ETIMEDOUT : -ECONNRESET, min, max);
		if (!o.hung && o.info.state != PPBPF_STATE_PENDING)
			failed(what, "state %d, want pending (nothing was judged)", o.info.state);
	} else {
		expect_call(what, &o, -EAGAIN, min, max);
		if (!o.hung)
			expect_stat(what, "timed_out", o.delta.timed_out, 1);
	}
	if (cfd >= 0)
		close(cfd);
	untrack_close(s.lfd);
}

/* Kernel side attached: the required port (timeout 0: without the daemon nothing ever times it out). */
static void test_fin_kernel(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_FIN_CASES; i++) {
		run_fin_case(&fin_cases[i], cfg.port_req, CALL_WAIT, 1000, 1, NULL);
		run_fin_case(&fin_cases[i], cfg.port_req, CALL_ACCEPT, 1000, 1, NULL);
	}
	end_group();
}

/* Nothing attached: the userspace fallback, opted in for loopback. */
static void test_fin_fallback(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_FIN_CASES; i++)
		run_fin_case(&fin_cases[i], cfg.port_req, CALL_ACCEPT, 1000, 0, "127.0.0.0/8");
	end_group();
}

/* ---- optional ports and server-first protocols (with `ppbpf run`) -------------------------- */

static const char GREETING[] = "220 mail.example ESMTP ready\r\n";

/*
 * A trusted peer that connects and waits for the server to speak first
 * (SMTP, FTP, MySQL). The kernel says plain once the port's timeout passes
 * with nothing sent (the daemon's sweep); ppbpf_accept must then return the
 * connection as plain, and the greeting must reach the client.
 */
static void server_first(const char *what, int port, int timeout_ms, int want_plain, long min, long max)
{
	struct server s = { .call = CALL_ACCEPT, .timeout_ms = timeout_ms, .greeting = GREETING };
	struct pollfd p;
	char got[128] = "";
	struct running r;
	struct outcome o;
	ssize_t n = -1;
	int cfd, err = 0;

	s.lfd = make_listener(port, 0, 1);
	cfd = dial(port, NULL);
	r = start(&s);
	p = (struct pollfd){ .fd = cfd, .events = POLLIN };
	if (poll(&p, 1, (timeout_ms ? timeout_ms : PPBPF_ACCEPT_TIMEOUT_MS) + 2000) == 1) {
		n = recv(cfd, got, sizeof(got) - 1, 0);
		err = n < 0 ? errno : 0;
		if (n > 0) {
			got[n] = 0;
			send_all(cfd, "QUIT\r\n", 6);
		}
	}
	finish(&r, &o);
	expect_call(what, &o, want_plain ? 0 : -EAGAIN, min, max);
	if (want_plain) {
		if (!o.hung && o.info.state != PPBPF_STATE_PLAIN)
			failed(what, "state %d, want plain (%d)", o.info.state, PPBPF_STATE_PLAIN);
		if (!o.hung && strncmp(o.orig, "127.0.0.1:", 10))
			failed(what, "orig is %s, want the real peer", o.orig);
		if (n <= 0 || strcmp(got, GREETING))
			failed(what, "the client got no greeting (recv %zd: %s)", n, n < 0 ? strerror(err) : "EOF");
		if (o.n != 6 || memcmp(o.data, "QUIT\r\n", 6))
			failed(what, "the server did not read the client's QUIT (%zu bytes)", o.n);
		expect_stat(what, "plain", o.delta.plain, 1);
	} else {
		if (n > 0)
			failed(what, "the client got \"%s\" from a connection that was never decided", got);
		expect_stat(what, "timed_out", o.delta.timed_out, 1);
	}
	close(cfd);
	untrack_close(s.lfd);
}

static void test_optional_server_first(void **state)
{
	long verdict = OPT_TIMEOUT_MS + SWEEP_MS; /* the sweep says plain by then */

	(void)state;
	server_first("ppbpf_accept (3000 ms), port timeout 300 ms: plain", cfg.port_opt, 3000, 1, PORT_TIMEOUT_FLOOR_MS,
		     verdict + 400);
	server_first("ppbpf_accept (default), port timeout 300 ms: plain", cfg.port_opt, 0, 1, PORT_TIMEOUT_FLOOR_MS,
		     verdict + 400);
	/* The verdict comes after the library's own wait ends: asked once more (within a grace) before giving up. */
	server_first("ppbpf_accept (300 ms), port timeout 300 ms: plain", cfg.port_opt, OPT_TIMEOUT_MS, 1,
		     PORT_TIMEOUT_FLOOR_MS, verdict + 400);
	/* The library's wait ends long before the kernel's: undecided, so closed, never handed out. */
	server_first("ppbpf_accept (200 ms), port timeout 5000 ms: closed", cfg.port_opt_long, 200, 0, 190, 200 + 700);
	end_group();
}

/* ppbpf_wait on an optional port: 0 and plain once the sweep says so, not ETIMEDOUT at its own timeout. */
static void test_optional_wait(void **state)
{
	struct server s = { .call = CALL_WAIT, .timeout_ms = 3000 };
	struct running r;
	struct outcome o;
	int cfd;

	(void)state;
	s.lfd = make_listener(cfg.port_opt, 0, 0);
	cfd = dial(cfg.port_opt, NULL);
	r = start(&s);
	finish(&r, &o);
	expect_call("ppbpf_wait (3000 ms), silent peer, port timeout 300 ms", &o, 0, PORT_TIMEOUT_FLOOR_MS,
		    OPT_TIMEOUT_MS + SWEEP_MS + 400);
	if (!o.hung && o.info.state != PPBPF_STATE_PLAIN)
		failed("ppbpf_wait on an optional port", "state %d, want plain", o.info.state);
	close(cfd);
	untrack_close(s.lfd);
	end_group();
}

/*
 * Without the daemon nothing says plain: a silent peer on the optional port
 * is closed at ppbpf_accept's timeout (plus its grace), with little CPU.
 */
static void test_optional_no_daemon(void **state)
{
	(void)state;
	server_first("ppbpf_accept (500 ms), optional port, no daemon: closed", cfg.port_opt, 500, 0, 490, 500 + 700);
	end_group();
}

/* With the daemon: a partial header then FIN on the optional port (300 ms) is rejected and reset by the sweep. */
static void test_fin_daemon(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_FIN_CASES; i++) {
		run_fin_case(&fin_cases[i], cfg.port_req, CALL_WAIT, 1000, 1, NULL);
		run_fin_case(&fin_cases[i], cfg.port_req, CALL_ACCEPT, 1000, 1, NULL);
	}
	for (size_t i = 0; i < N_FIN_CASES; i++) {
		const struct fin_case *c = &fin_cases[i];
		struct server s = { .call = CALL_ACCEPT, .timeout_ms = 3000 };
		char what[160];
		struct running r;
		struct outcome o;
		int cfd;

		if (c->act != ACT_SEND_FIN || c->late)
			continue;
		snprintf(what, sizeof(what), "ppbpf_accept, optional port (300 ms): %s", c->name);
		s.lfd = make_listener(cfg.port_opt, 0, 1);
		cfd = fin_peer_act(c, dial(cfg.port_opt, NULL));
		r = start(&s);
		finish(&r, &o);
		/* rejected at the port's timeout (the record says error) or reset by the daemon first */
		expect_call(what, &o, -EAGAIN, PORT_TIMEOUT_FLOOR_MS, OPT_TIMEOUT_MS + SWEEP_MS + 600);
		if (!o.hung && o.delta.rejected + o.delta.timed_out != 1)
			failed(what, "not counted as rejected or timed out");
		close(cfd);
		untrack_close(s.lfd);
	}
	end_group();
}

/* ---- the userspace fallback's trust -------------------------------------------------------- */

/*
 * Nothing attached: a header is honoured only from a peer in the fallback's
 * trust list. Any other connection comes back untouched (the header still in
 * the stream, the real peer in orig), as an untrusted peer of the kernel side.
 */
struct fb_case {
	const char *what;
	const char *from;        /* the client's address: 127.0.0.x, or ::1 (then an IPv6 listener) */
	int dual_stack;          /* an IPv4 client of an IPv6 listener (v4-mapped) */
	const char *env;         /* PPBPF_FALLBACK_TRUST, or NULL: unset */
	int set_trust;           /* opts.fallback_trust = trust */
	const char *trust;
	int no_fallback;
	int honoured;
};

static void fallback_case(const struct fb_case *c)
{
	struct server s = { .call = CALL_ACCEPT, .timeout_ms = 1000, .env_trust = c->env,
			    .no_fallback = c->no_fallback, .set_trust = c->set_trust, .trust = c->trust };
	int v6 = c->from && strchr(c->from, ':');
	char real[64];
	struct running r;
	struct outcome o;
	int cfd;

	s.lfd = make_listener(cfg.port_req, v6 || c->dual_stack, 1);
	cfd = dial(cfg.port_req, c->from);
	send_all(cfd, V1_FULL, sizeof(V1_FULL) - 1);
	send_all(cfd, "GET /\n", 6);
	shutdown(cfd, SHUT_WR);
	r = start(&s);
	finish(&r, &o);
	if (v6)
		snprintf(real, sizeof(real), "[::1]:");
	else
		snprintf(real, sizeof(real), c->dual_stack ? "[::ffff:%s]:" : "%s:", c->from ? c->from : "127.0.0.1");
	expect_call(c->what, &o, 0, 0, 500);
	if (o.hung || o.rc)
		goto out;
	if (c->honoured) {
		if (strcmp(o.orig, v6 || c->dual_stack ? "[::ffff:192.0.2.1]:51000" : "192.0.2.1:51000") ||
		    o.info.state != PPBPF_STATE_DONE)
			failed(c->what, "orig %s, state %d: the trusted header was not honoured", o.orig, o.info.state);
		if (o.n != 6 || memcmp(o.data, "GET /\n", 6))
			failed(c->what, "the stream after the header is not the request (%zu bytes)", o.n);
		expect_stat(c->what, "userspace", o.delta.userspace, 1);
	} else {
		if (strncmp(o.orig, real, strlen(real)))
			failed(c->what, "orig is %s, want %s...: a header from an untrusted peer was honoured", o.orig,
			       real);
		if (o.info.state != PPBPF_STATE_NONE)
			failed(c->what, "state %d, want none (nothing honoured)", o.info.state);
		if (o.n != sizeof(V1_FULL) - 1 + 6 || memcmp(o.data, V1_FULL, sizeof(V1_FULL) - 1))
			failed(c->what, "the stream was touched (%zu bytes)", o.n);
		expect_stat(c->what, "userspace", o.delta.userspace, 0);
		expect_stat(c->what, "plain", o.delta.plain, 1);
	}
out:
	close(cfd);
	untrack_close(s.lfd);
}

/* The default: no trust list, so nothing is honoured (after a detach, outside the attached cgroup). */
static void test_fallback_default_closed(void **state)
{
	static const struct fb_case cases[] = {
		{ .what = "no trust list: a forged header is not honoured" },
		{ .what = "no trust list, from 127.0.0.2: not honoured", .from = "127.0.0.2" },
		{ .what = "no trust list, IPv6 peer: not honoured", .from = "::1" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		fallback_case(&cases[i]);
	end_group();
}

/* Opting in: opts.fallback_trust, else PPBPF_FALLBACK_TRUST; no_fallback wins over both. */
static void test_fallback_trust_list(void **state)
{
	static const struct fb_case cases[] = {
		{ "opts 127.0.0.2, peer 127.0.0.2: honoured", "127.0.0.2", 0, NULL, 1, "127.0.0.2", 0, 1 },
		{ "opts 127.0.0.2, peer 127.0.0.1: untouched", "127.0.0.1", 0, NULL, 1, "127.0.0.2", 0, 0 },
		{ "opts '198.51.100.0/24, 127.0.0.0/30': honoured", "127.0.0.3", 0, NULL, 1,
		  "198.51.100.0/24, 127.0.0.0/30", 0, 1 },
		{ "opts 127.0.0.0/31, peer 127.0.0.2: untouched", "127.0.0.2", 0, NULL, 1, "127.0.0.0/31", 0, 0 },
		{ "env 127.0.0.2/32, peer 127.0.0.2: honoured", "127.0.0.2", 0, "127.0.0.2/32", 0, NULL, 0, 1 },
		{ "env 127.0.0.2/32, peer 127.0.0.1: untouched", "127.0.0.1", 0, "127.0.0.2/32", 0, NULL, 0, 0 },
		{ "opts '' (nobody) over env 0.0.0.0/0: untouched", "127.0.0.1", 0, "0.0.0.0/0", 1, "", 0, 0 },
		{ "opts 127.0.0.1 over env 192.0.2.0/24: honoured", "127.0.0.1", 0, "192.0.2.0/24", 1, "127.0.0.1", 0,
		  1 },
		{ "no_fallback, env 0.0.0.0/0: untouched", "127.0.0.1", 0, "0.0.0.0/0", 0, NULL, 1, 0 },
		{ "no_fallback, opts 127.0.0.1: untouched", "127.0.0.1", 0, NULL, 1, "127.0.0.1", 1, 0 },
		{ "IPv6 peer, opts 2001:db8::/32: untouched", "::1", 0, NULL, 1, "2001:db8::/32", 0, 0 },
		{ "IPv6 peer, opts ::1: honoured", "::1", 0, NULL, 1, "2001:db8::/32 ::1", 0, 1 },
		{ "IPv4 on dual stack, opts 127.0.0.1: honoured (as IPv4)", "127.0.0.1", 1, NULL, 1, "127.0.0.1", 0,
		  1 },
		{ "IPv4 on dual stack, opts ::ffff:0:0/96: untouched", "127.0.0.1", 1, NULL, 1, "::ffff:0:0/96", 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		fallback_case(&cases[i]);
	end_group();
}

/* A trust list that does not parse: EINVAL before anything is accepted (the connection stays queued). */
static void test_fallback_bad_list(void **state)
{
	static const char *const bad[] = { "127.0.0.01", "192.0.2.0/33", "2001:db8::/129", "192.0.2.0/", "example.com",
					   "192.0.2.0/-1", "192.0.2.0/+8", "10.0.0.0/8,,nope" };
	int lfd = make_listener(cfg.port_req, 0, 1), cfd = dial(cfg.port_req, NULL), fd;
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	(void)state;
	assert_int_equal(poll(&p, 1, 2000), 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ppbpf_accept_opts o = { .timeout_ms = 500, .fallback_trust = bad[i] };

		errno = 0;
		fd = ppbpf_accept_opts(lfd, NULL, NULL, 0, &o);
		if (fd >= 0 || errno != EINVAL)
			failed("bad trust list", "'%s': fd %d, errno %s; want -1, EINVAL", bad[i], fd,
			       strerrorname_np(errno) ? strerrorname_np(errno) : "?");
		if (fd >= 0)
			close(fd);
		setenv(PPBPF_FALLBACK_TRUST_ENV, bad[i], 1);
		errno = 0;
		fd = ppbpf_accept(lfd, NULL, NULL, 0);
		unsetenv(PPBPF_FALLBACK_TRUST_ENV);
		if (fd >= 0 || errno != EINVAL)
			failed("bad PPBPF_FALLBACK_TRUST", "'%s': fd %d, errno %s; want -1, EINVAL", bad[i], fd,
			       strerrorname_np(errno) ? strerrorname_np(errno) : "?");
		if (fd >= 0)
			close(fd);
	}
	/* still queued; no_fallback ignores the list */
	setenv(PPBPF_FALLBACK_TRUST_ENV, "nope", 1);
	fd = ppbpf_accept_opts(lfd, NULL, NULL, 0, &(struct ppbpf_accept_opts){ .no_fallback = 1 });
	unsetenv(PPBPF_FALLBACK_TRUST_ENV);
	if (fd < 0)
		failed("bad trust list", "not left queued, or no_fallback did not ignore the list: %s",
		       strerror(errno));
	else
		close(fd);
	close(cfd);
	untrack_close(lfd);
	end_group();
}

/* The fallback refuses what the kernel side would: a header over its 4096-byte limit. */
static void test_fallback_kernel_limit(void **state)
{
	static unsigned char hdr[8192];
	struct server s = { .call = CALL_ACCEPT, .timeout_ms = 1000, .set_trust = 1, .trust = "127.0.0.1" };
	static unsigned char pad[4200];
	struct ppbpf_tlv t = { PPBPF_TLV_NOOP, sizeof(pad), pad };
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
				 .src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 2 },
				 .src_port = 51000, .dst_port = 443, .tlvs = &t, .n_tlvs = 1 };
	int n = ppbpf_build(&b, hdr, sizeof(hdr)), cfd;
	struct running r;
	struct outcome o;

	(void)state;
	assert_true(n > 4096);
	s.lfd = make_listener(cfg.port_req, 0, 1);
	cfd = dial(cfg.port_req, NULL);
	send_all(cfd, hdr, (size_t)n);
	r = start(&s);
	finish(&r, &o);
	expect_call("fallback: a 4,244-byte v2 header (the kernel's limit is 4096)", &o, -EAGAIN, 0, 500);
	if (!o.hung)
		expect_stat("fallback: header over 4096 bytes", "rejected", o.delta.rejected, 1);
	close(cfd);
	untrack_close(s.lfd);
	end_group();
}

/* ---- ESTALE: bytes the kernel side did not see ---------------------------------------------- */

/* Clear (on = 0) or set the port's bit in the pinned port_bits map: ingress then passes its bytes unseen. */
static void port_bit(int port, int on)
{
	char path[512];
	uint32_t word = (uint32_t)port / 64;
	uint64_t bits;
	int fd;

	snprintf(path, sizeof(path), "%s/port_bits", cfg.pin_dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		fail_msg("bpf_obj_get %s: %s", path, strerror(errno));
	assert_int_equal(bpf_map_lookup_elem(fd, &word, &bits), 0);
	if (on)
		bits |= 1ull << (port % 64);
	else
		bits &= ~(1ull << (port % 64));
	assert_int_equal(bpf_map_update_elem(fd, &word, &bits, BPF_ANY), 0);
	close(fd);
}

static int teardown_estale(void **state)
{
	port_bit(cfg.port_v2, 1);
	return teardown(state);
}

/*
 * A tracked socket (pending record) whose bytes bypassed the kernel side:
 * more queued than the record saw, so ppbpf_wait says ESTALE. The test
 * makes one by clearing the port's bit between the handshake and the bytes.
 * The port takes only v2 headers of at most 64 bytes: the library must not
 * honour what the kernel would have refused.
 */
static void estale_case(const char *what, const void *hdr, size_t len, enum call call)
{
	struct server s = { .call = call, .timeout_ms = 1000 };
	struct running r;
	struct outcome o;
	int cfd;

	s.lfd = make_listener(cfg.port_v2, 0, call == CALL_ACCEPT);
	cfd = dial(cfg.port_v2, NULL);
	sleep_ms(30); /* tracked: sockops has made the record */
	port_bit(cfg.port_v2, 0);
	send_all(cfd, hdr, len);
	send_all(cfd, "hello\n", 6);
	sleep_ms(30); /* queued, unseen */
	port_bit(cfg.port_v2, 1);
	r = start(&s);
	finish(&r, &o);
	if (call == CALL_WAIT) {
		expect_call(what, &o, -ESTALE, 0, 300);
	} else {
		/* closed, never returned: the record has no policy to judge it by in userspace */
		expect_call(what, &o, -EAGAIN, 0, 300);
		if (!o.hung && o.rc == 0)
			failed(what, "returned (state %d, version %d, orig %s): weaker than the port's policy",
			       o.info.state, o.info.version, o.orig);
		if (!o.hung)
			expect_stat(what, "userspace", o.delta.userspace, 0);
	}
	close(cfd);
	untrack_close(s.lfd);
}

static void test_estale(void **state)
{
	unsigned char small[128], big[256];
	int ns = build_v2(small, sizeof(small), 0), nb = build_v2(big, sizeof(big), 100);

	(void)state;
	estale_case("ppbpf_wait: bytes the kernel did not see", V1_FULL, sizeof(V1_FULL) - 1, CALL_WAIT);
	estale_case("ppbpf_accept, ESTALE: v1 on a --versions 2 port", V1_FULL, sizeof(V1_FULL) - 1, CALL_ACCEPT);
	estale_case("ppbpf_accept, ESTALE: 128-byte v2 over --max-header 64", big, (size_t)nb, CALL_ACCEPT);
	estale_case("ppbpf_accept, ESTALE: a v2 header within the policy", small, (size_t)ns, CALL_ACCEPT);
	end_group();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest kernel_tests[] = {
		cmocka_unit_test_teardown(test_fin_kernel, teardown),
		cmocka_unit_test_teardown(test_optional_no_daemon, teardown),
		cmocka_unit_test_teardown(test_estale, teardown_estale),
	};
	const struct CMUnitTest daemon_tests[] = {
		cmocka_unit_test_teardown(test_optional_server_first, teardown),
		cmocka_unit_test_teardown(test_optional_wait, teardown),
		cmocka_unit_test_teardown(test_fin_daemon, teardown),
	};
	const struct CMUnitTest fallback_tests[] = {
		cmocka_unit_test_teardown(test_fallback_default_closed, teardown),
		cmocka_unit_test_teardown(test_fallback_trust_list, teardown),
		cmocka_unit_test_teardown(test_fallback_bad_list, teardown),
		cmocka_unit_test_teardown(test_fallback_kernel_limit, teardown),
		cmocka_unit_test_teardown(test_fin_fallback, teardown),
	};
	const struct case_group groups[] = {
		CASE_GROUP("kernel", "ppbpf_accept, kernel side, no daemon", kernel_tests),
		CASE_GROUP("daemon", "ppbpf_accept, kernel side, ppbpf run", daemon_tests),
		CASE_GROUP("fallback", "ppbpf_accept, userspace fallback", fallback_tests),
	};
	const struct case_group *group;
	int status;

	group = PICK_GROUP("accept_test", groups, argc, argv, argc == 7,
			   "kernel|daemon|fallback PORT_REQ PORT_OPT PORT_OPT_LONG PORT_V2 PIN_DIR", &status);
	if (!group)
		return status;
	cfg.port_req = atoi(argv[2]);
	cfg.port_opt = atoi(argv[3]);
	cfg.port_opt_long = atoi(argv[4]);
	cfg.port_v2 = atoi(argv[5]);
	cfg.pin_dir = argv[6];
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_case_group("accept_test", group);
}
