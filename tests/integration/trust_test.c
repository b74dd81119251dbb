// SPDX-License-Identifier: MIT
/*
 * Trust and rejection against real sockets, with `ppbpf run` resetting what
 * the kernel side rejects. Run by trust.sh inside an attached test cgroup;
 * each mode is one test of issue 4:
 *
 *   spoof PLAIN_PORT REJECT_PORT N   forged headers from an untrusted address
 *   plain PORT N                     the same, only on a port that leaves them plain
 *   malformed REQ V2ONLY SMALL       every parser error class, a refused version,
 *                                    a header over the limit, a missing header
 *   slow PORT TIMEOUT_MS N_GOOD      one header byte a second vs N_GOOD good clients
 *   load PORT N_HELD N_GOOD          N_HELD pending headers held open at once
 *   stream PORT N SECONDS [BYTES]    N connections streaming (the restart test); BYTES
 *                                    paces them to about that many in all (default:
 *                                    4 KiB per connection every 2 ms, ~1 GiB for 100 x 6 s)
 *   tablefull PORT CAPACITY          the connection table's capacity
 *   honoured PORT N FROM             N headers from FROM: each honoured (the policy trusts FROM)
 *   untracked PORT N FROM            N headers from FROM: none honoured, streams untouched
 *                                    (FROM is not trusted there, or the port has no policy)
 *   flood PORT SECONDS THREADS       untrusted connections opened and dropped as fast as
 *                                    THREADS threads can, for SECONDS (a flood of rejections)
 *
 * Clients connect from 127.0.0.1 (trusted) or 127.0.0.9 (not trusted). A
 * rejected connection must reach the client as an RST, and the server's
 * first read must never return a byte of it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>
#include "../unit/vectors.h"
#include "testlib.h"

#define TRUSTED "127.0.0.1"
#define UNTRUSTED "127.0.0.9"
/* How long a rejected connection may take to be reset (the daemon sweeps on each event). */
#define RESET_WAIT_MS 3000
/*
 * No wait of a test is longer: a blocking accept() or read() that would wait
 * for ever (a client that failed to connect) fails instead. Accepted sockets
 * inherit it from their listener.
 */
#define STUCK_MS 30000

static int listen_on(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((__u16)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		perror("listen");
		exit(2);
	}
	set_timeout(fd, STUCK_MS);
	return fd;
}

/*
 * A connection to 127.0.0.1:port from the address `from`, or -1 with errno.
 * ECONNRESET: a peer rejected at the handshake was reset before connect()
 * returned (a busy machine); its server side still waits in the accept queue.
 */
static int dial(int port, const char *from)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((__u16)port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0), err;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	inet_pton(AF_INET, from, &src.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		err = errno;
		if (err != ECONNRESET)
			perror("dial");
		if (fd >= 0)
			close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* A v2 PROXY TCP4 header claiming 203.0.113.<host>:<sport>. Returns its length. */
static int forged_v2(__u8 *out, size_t cap, int host, int sport)
{
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
				 .src_addr = { 203, 0, 113, (__u8)host }, .dst_addr = { 198, 51, 100, 2 },
				 .src_port = (__u16)sport, .dst_port = 443 };

	return ppbpf_build(&b, out, cap);
}

/*
 * The server's side of a connection that must be rejected: its first read
 * returns no byte, and ends in an error or EOF (not a timeout).
 */
static void expect_server_sees_nothing(int fd, const char *what)
{
	char buf[256];
	ssize_t n;

	set_timeout(fd, RESET_WAIT_MS);
	n = recv(fd, buf, sizeof(buf), 0);
	CHECK(n <= 0, "%s: the server read %zd bytes of a rejected connection", what, n);
	CHECK(n == 0 || errno == ECONNABORTED || errno == ECONNRESET,
	      "%s: the server's read was not ended by a reset: %s", what, strerror(errno));
}

/*
 * The client's side of a rejected connection: an RST within the wait. If it
 * came while the client was still sending, send() reported it (send_rc) and
 * the socket has nothing more to say.
 */
static void expect_client_reset(int fd, int send_rc, const char *what)
{
	char buf[64];
	ssize_t n;

	if (send_rc == -ECONNRESET) {
		CHECK(true, "%s", what);
		return;
	}
	set_timeout(fd, RESET_WAIT_MS);
	n = recv(fd, buf, sizeof(buf), 0);
	CHECK(n < 0 && errno == ECONNRESET, "%s: the client was not reset (recv %zd, %s)", what, n,
	      n < 0 ? strerror(errno) : "no error");
}

static bool is_addr(const struct sockaddr_in *a, const char *text)
{
	struct in_addr want;

	inet_pton(AF_INET, text, &want);
	return a->sin_family == AF_INET && a->sin_addr.s_addr == want.s_addr;
}

/* ---- spoof ------------------------------------------------------------------------------ */

/* A peer whose header must not be honoured (untrusted, or no policy): nothing of it is. */
static void untracked_one(int lfd, int port, int i, const char *from)
{
	__u8 hdr[64], got[128];
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	struct ppbpf_info info;
	int hl = forged_v2(hdr, sizeof(hdr), 7, 40000 + i % 1000), c = dial(port, from), s;
	bool via_lib = i % 2;

	if (c < 0 || send_all(c, hdr, (size_t)hl) || send_all(c, "PING", 4)) {
		CHECK(false, "spoof %d: client failed", i);
		if (c >= 0)
			close(c);
		return;
	}
	if (via_lib) {
		struct ppbpf_accept_opts o = { .info = &info, .timeout_ms = 2000 };

		s = ppbpf_accept_opts(lfd, (struct sockaddr *)&peer, &len, 0, &o);
		CHECK(s >= 0 && info.state == PPBPF_STATE_NONE, "spoof %d: ppbpf_accept honoured something (state %d)", i,
		      info.state);
	} else {
		s = accept(lfd, (struct sockaddr *)&peer, &len);
		CHECK(ppbpf_get(s, &info) == -ENODATA, "spoof %d: the untrusted socket is tracked", i);
	}
	CHECK(s >= 0 && is_addr(&peer, from), "spoof %d: accept gave another address than %s", i, from);
	len = sizeof(peer);
	CHECK(!getpeername(s, (struct sockaddr *)&peer, &len) && is_addr(&peer, from),
	      "spoof %d: getpeername was rewritten", i);
	len = sizeof(peer);
	CHECK(!ppbpf_getpeername(s, (struct sockaddr *)&peer, &len) && is_addr(&peer, from),
	      "spoof %d: ppbpf_getpeername believed the header", i);
	/* Untouched: the forged header is still the first bytes the application reads. */
	set_timeout(s, 2000);
	CHECK(recv(s, got, (size_t)hl + 4, MSG_WAITALL) == hl + 4 && !memcmp(got, hdr, (size_t)hl) &&
		      !memcmp(got + hl, "PING", 4),
	      "spoof %d: the stream of an untrusted peer was changed", i);
	close(s);
	close(c);
}

/*
 * Send bytes and a payload from `from`; the connection must be reset (the
 * reset may come first, while the client is still sending) before the
 * server reads anything.
 */
static void expect_rejected(int lfd, int port, const char *from, const __u8 *bytes, size_t len, const char *what)
{
	int c = dial(port, from), s, rc;

	if (c < 0 && errno == ECONNRESET) { /* reset already: the client's check is done; now the server's */
		CHECK(true, "%s", what);
		s = accept(lfd, NULL, NULL);
		CHECK(s >= 0, "%s: accept failed", what);
		if (s >= 0) {
			expect_server_sees_nothing(s, what);
			close(s);
		}
		return;
	}
	if (c < 0) {
		CHECK(false, "%s: connect failed", what);
		return;
	}
	rc = send_all(c, bytes, len);
	if (!rc)
		rc = send_all(c, "SECRET PAYLOAD", 14);
	s = accept(lfd, NULL, NULL);
	CHECK(s >= 0, "%s: accept failed", what);
	if (s >= 0) {
		expect_server_sees_nothing(s, what);
		close(s);
	}
	expect_client_reset(c, rc, what);
	close(c);
}

/* An untrusted peer on a "reject" port: reset at the handshake, before the server reads anything. */
static void spoof_reject_one(int lfd, int port, int i)
{
	__u8 hdr[64];
	int hl = forged_v2(hdr, sizeof(hdr), 9, 41000 + i % 1000);
	char what[64];

	snprintf(what, sizeof(what), "spoof reject %d", i);
	expect_rejected(lfd, port, UNTRUSTED, hdr, (size_t)hl, what);
}

static int run_spoof(int plain_port, int reject_port, int n)
{
	int lp = listen_on(plain_port), lr = listen_on(reject_port);
	struct ppbpf_accept_stats before, after;
	struct sockaddr_in orig;
	socklen_t len = sizeof(orig);
	__u8 hdr[64];
	int hl, c, s;

	for (int i = 0; i < n; i++)
		untracked_one(lp, plain_port, i, UNTRUSTED);
	printf("spoof: %d forged headers from %s on a plain port: never honoured\n", n, UNTRUSTED);
	for (int i = 0; i < n; i++)
		spoof_reject_one(lr, reject_port, i);
	printf("spoof: %d forged headers from %s on a reject port: each reset\n", n, UNTRUSTED);

	/* ppbpf_accept skips the rejected ones and returns the next good connection. */
	ppbpf_accept_stats(&before);
	for (int i = 0; i < 20; i++) {
		int bad = dial(reject_port, UNTRUSTED);

		if (bad < 0) { /* reset before connect() returned: ppbpf_accept has it to skip all the same */
			CHECK(errno == ECONNRESET, "spoof before ppbpf_accept: connect failed");
			continue;
		}
		hl = forged_v2(hdr, sizeof(hdr), 9, 42000 + i);
		expect_client_reset(bad, send_all(bad, hdr, (size_t)hl), "spoof before ppbpf_accept");
		close(bad);
	}
	c = dial(reject_port, TRUSTED);
	hl = forged_v2(hdr, sizeof(hdr), 50, 43210);
	send_all(c, hdr, (size_t)hl);
	send_all(c, "GOOD", 4);
	s = ppbpf_accept(lr, (struct sockaddr *)&orig, &len, 0);
	ppbpf_accept_stats(&after);
	CHECK(s >= 0 && is_addr(&orig, "203.0.113.50") && ntohs(orig.sin_port) == 43210,
	      "ppbpf_accept did not return the good connection after 20 rejected ones");
	CHECK(after.rejected - before.rejected == 20, "ppbpf_accept closed %lu rejected connections, not 20",
	      after.rejected - before.rejected);
	if (s >= 0) {
		char buf[4];

		set_timeout(s, 2000);
		CHECK(recv(s, buf, 4, MSG_WAITALL) == 4 && !memcmp(buf, "GOOD", 4), "the good connection's payload");
		close(s);
	}
	close(c);
	close(lp);
	close(lr);
	return 0;
}

/* Only the first half of spoof: untrusted peers on a port that leaves them plain. */
static int run_plain(int port, int n)
{
	int lfd = listen_on(port);

	for (int i = 0; i < n; i++)
		untracked_one(lfd, port, i, UNTRUSTED);
	printf("plain: %d forged headers from %s: never honoured, stream untouched\n", n, UNTRUSTED);
	close(lfd);
	return 0;
}

/* Headers from `from` on a port without a policy, or where `from` is not trusted: none honoured. */
static int run_untracked(int port, int n, const char *from)
{
	int lfd = listen_on(port);

	for (int i = 0; i < n; i++)
		untracked_one(lfd, port, i, from);
	printf("untracked: %d headers from %s on port %d: never honoured, streams untouched\n", n, from, port);
	close(lfd);
	return 0;
}

/* What the kernel side says of a socket now, for a failure's message. */
static const char *kernel_answer(int fd)
{
	static char text[96];
	struct ppbpf_info info;
	int rc;

	if (fd < 0) {
		struct ppbpf_accept_stats st;

		ppbpf_accept_stats(&st);
		snprintf(text, sizeof(text), "no socket; the library refused %lu, %lu timed out", st.rejected,
			 st.timed_out);
		return text;
	}
	rc = ppbpf_get(fd, &info);
	if (rc)
		snprintf(text, sizeof(text), "the query now: %s", strerror(-rc));
	else
		snprintf(text, sizeof(text), "the query now: state %u error %d have %u", info.state, info.error,
			 info.have);
	return text;
}

/* Headers from `from`, trusted there: each one honoured, the payload after it intact. */
static int run_honoured(int port, int n, const char *from)
{
	int lfd = listen_on(port);

	for (int i = 0; i < n; i++) {
		struct ppbpf_info info = { 0 };
		struct ppbpf_accept_opts o = { .info = &info, .timeout_ms = 2000 };
		struct sockaddr_in orig;
		socklen_t len = sizeof(orig);
		__u8 hdr[64];
		char buf[4];
		int hl = forged_v2(hdr, sizeof(hdr), 80, 44000 + i), c = dial(port, from), s;

		if (c < 0 || send_all(c, hdr, (size_t)hl) || send_all(c, "PING", 4)) {
			CHECK(false, "honoured %d: the client failed", i);
			if (c >= 0)
				close(c);
			continue;
		}
		s = ppbpf_accept_opts(lfd, (struct sockaddr *)&orig, &len, 0, &o);
		CHECK(s >= 0 && info.state == PPBPF_STATE_DONE && is_addr(&orig, "203.0.113.80") &&
			      ntohs(orig.sin_port) == 44000 + i,
		      "honoured %d: the header from %s on port %d was not honoured (accept %s, state %d; %s)", i,
		      from, port, s < 0 ? strerror(errno) : "ok", info.state, kernel_answer(s));
		if (s >= 0) {
			set_timeout(s, 2000);
			CHECK(recv(s, buf, 4, MSG_WAITALL) == 4 && !memcmp(buf, "PING", 4), "honoured %d: the payload", i);
			close(s);
		}
		close(c);
	}
	printf("honoured: %d headers from %s on port %d: each honoured\n", n, from, port);
	close(lfd);
	return 0;
}

/* ---- flood ------------------------------------------------------------------------------- */

struct flood {
	int port;
	double until;
	volatile int stop;
	unsigned long made, failed;
	pthread_mutex_t lock;
};

/* Accept and close whatever comes, so the listen queue never fills. */
static void *flood_acceptor(void *arg)
{
	struct flood *f = arg;
	int lfd = listen_on(f->port);

	fcntl(lfd, F_SETFL, O_NONBLOCK);
	while (!f->stop) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		while ((fd = accept(lfd, NULL, NULL)) >= 0)
			close(fd);
	}
	close(lfd);
	return NULL;
}

/* Connect from the untrusted address and drop the connection at once (an RST: no TIME_WAIT). */
static void *flood_client(void *arg)
{
	struct flood *f = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((__u16)f->port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	unsigned long made = 0, failed = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	inet_pton(AF_INET, UNTRUSTED, &src.sin_addr);
	while (now_s() < f->until) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0) {
			failed++;
			continue;
		}
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) || connect(fd, (struct sockaddr *)&a, sizeof(a)))
			failed++;
		else
			made++;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
	pthread_mutex_lock(&f->lock);
	f->made += made;
	f->failed += failed;
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static int run_flood(int port, int seconds, int threads)
{
	struct flood f = { .port = port, .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t acceptor, clients[64];

	if (threads < 1 || threads > 64)
		return 2;
	pthread_create(&acceptor, NULL, flood_acceptor, &f);
	sleep_ms(100);
	f.until = now_s() + seconds;
	for (int i = 0; i < threads; i++)
		pthread_create(&clients[i], NULL, flood_client, &f);
	for (int i = 0; i < threads; i++)
		pthread_join(clients[i], NULL);
	f.stop = 1;
	pthread_join(acceptor, NULL);
	CHECK(f.made >= 100, "flood: only %lu connections in %d s", f.made, seconds);
	printf("FLOOD %lu %lu\n", f.made, f.failed);
	printf("flood: %lu untrusted connections in %d s (%lu failed to connect), %d threads\n", f.made, seconds,
	       f.failed, threads);
	return 0;
}

/* ---- malformed --------------------------------------------------------------------------- */

static int run_malformed(int req_port, int v2only_port, int small_port)
{
	int lr = listen_on(req_port), lv = listen_on(v2only_port), ls = listen_on(small_port);
	bool seen[64] = { false };
	__u8 buf[VECTOR_MAX + 64];
	int classes = 0, sent = 0;

	/* Every invalid vector of the parser's table, whole, as a trusted balancer would send it. */
	for (size_t i = 0; i < n_vectors; i++) {
		const struct vector *v = &vectors[i];
		size_t n;

		if (v->rc >= 0 || v->rc == PPBPF_E_INCOMPLETE || v->max)
			continue;
		n = vector_bytes(v, buf, sizeof(buf));
		expect_rejected(lr, req_port, TRUSTED, buf, n, v->name);
		if (!seen[-v->rc])
			classes++;
		seen[-v->rc] = true;
		sent++;
	}
	/* A header over the port's limit (max-header 64), a valid v1 on a v2-only port, no header at all. */
	{
		static __u8 big[300];
		struct ppbpf_tlv t = { .type = PPBPF_TLV_NOOP, .len = 200, .value = big };
		struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
					 .src_addr = { 203, 0, 113, 1 }, .dst_addr = { 198, 51, 100, 2 },
					 .src_port = 1, .dst_port = 2, .tlvs = &t, .n_tlvs = 1 };
		int n = ppbpf_build(&b, buf, sizeof(buf));

		expect_rejected(ls, small_port, TRUSTED, buf, (size_t)n, "header over max-header");
		seen[-PPBPF_E_TOO_LARGE] = true;
	}
	{
		const char *v1 = "PROXY TCP4 203.0.113.1 198.51.100.2 1000 443\r\n";

		expect_rejected(lv, v2only_port, TRUSTED, (const __u8 *)v1, strlen(v1), "v1 on a v2-only port");
	}
	expect_rejected(lr, req_port, TRUSTED, (const __u8 *)"GET / HTTP/1.1\r\n\r\n", 18, "no header on a required port");
	for (int rc = PPBPF_E_NOT_PROXY; rc >= PPBPF_E_LAST; rc--)
		CHECK(seen[-rc], "no malformed case of class %s was sent", ppbpf_errname(rc));
	printf("malformed: %d invalid headers (%d parser error classes), a header over the limit, a refused "
	       "version and a missing header: each reset, no byte read\n", sent, classes);
	close(lr);
	close(lv);
	close(ls);
	return 0;
}

/* ---- an event-loop server (slow, load) --------------------------------------------------- */

/*
 * Serves a port like an ordinary epoll server: accept(), then wait for the
 * socket to be readable, read the header and a 100-byte request, answer 100
 * bytes, close. Sockets whose header is pending are simply never readable.
 */
struct loop_server {
	pthread_t thread;
	int lfd, ep;
	volatile int stop;
	unsigned long accepted, served, errors;
};

static void serve_readable(struct loop_server *ls, int fd)
{
	struct ppbpf_info info;
	char buf[4096], reply[100];
	int rc = ppbpf_get(fd, &info);
	ssize_t n;

	if (rc || info.state != PPBPF_STATE_DONE) {
		/* an error (the reset), or EOF */
		epoll_ctl(ls->ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
		ls->errors++;
		return;
	}
	n = recv(fd, buf, info.header_len + 100, MSG_WAITALL);
	if (n == (ssize_t)info.header_len + 100) {
		memset(reply, 'r', sizeof(reply));
		send_all(fd, reply, sizeof(reply));
		ls->served++;
	} else {
		ls->errors++;
	}
	epoll_ctl(ls->ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
}

static void *loop_main(void *arg)
{
	struct loop_server *ls = arg;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls->lfd }, evs[256];

	epoll_ctl(ls->ep, EPOLL_CTL_ADD, ls->lfd, &ev);
	while (!ls->stop) {
		int n = epoll_wait(ls->ep, evs, 256, 50);

		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == ls->lfd) {
				int fd;

				while ((fd = accept4(ls->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = fd };

					ls->accepted++;
					epoll_ctl(ls->ep, EPOLL_CTL_ADD, fd, &e);
				}
			} else {
				int fl = fcntl(evs[i].data.fd, F_GETFL);

				fcntl(evs[i].data.fd, F_SETFL, fl & ~O_NONBLOCK); /* MSG_WAITALL for the request */
				serve_readable(ls, evs[i].data.fd);
			}
		}
	}
	return NULL;
}

static void loop_start(struct loop_server *ls, int port)
{
	memset(ls, 0, sizeof(*ls));
	ls->lfd = listen_on(port);
	fcntl(ls->lfd, F_SETFL, O_NONBLOCK);
	ls->ep = epoll_create1(0);
	pthread_create(&ls->thread, NULL, loop_main, ls);
}

static void loop_stop(struct loop_server *ls)
{
	ls->stop = 1;
	pthread_join(ls->thread, NULL);
	close(ls->lfd);
	close(ls->ep);
}

/* One well-behaved request: header, 100 bytes, a 100-byte answer. Returns the seconds it took, or -1. */
static double good_request(int port, int i)
{
	__u8 hdr[64], req[100], reply[100];
	double t0 = now_s();
	int hl = forged_v2(hdr, sizeof(hdr), 20, 10000 + i), c = dial(port, TRUSTED);
	bool ok;

	if (c < 0)
		return -1;
	memset(req, 'q', sizeof(req));
	set_timeout(c, 5000);
	ok = !send_all(c, hdr, (size_t)hl) && !send_all(c, req, sizeof(req)) &&
	     recv(c, reply, sizeof(reply), MSG_WAITALL) == (ssize_t)sizeof(reply);
	close(c);
	return ok ? now_s() - t0 : -1;
}

/* Serve n good requests; returns how many succeeded, and the slowest. */
static int good_requests(int port, int n, double *slowest)
{
	int ok = 0;

	*slowest = 0;
	for (int i = 0; i < n; i++) {
		double t = good_request(port, i);

		if (t >= 0)
			ok++;
		if (t > *slowest)
			*slowest = t;
	}
	return ok;
}

/* ---- slow -------------------------------------------------------------------------------- */

struct slow_client {
	pthread_t thread;
	int port;
	double reset_after; /* seconds from connect to the reset; -1: never */
	int sent;
};

static void *slow_main(void *arg)
{
	struct slow_client *sc = arg;
	__u8 hdr[64];
	int hl = forged_v2(hdr, sizeof(hdr), 30, 30000), c = dial(sc->port, TRUSTED), one = 1;
	double t0 = now_s();

	sc->reset_after = -1;
	if (c < 0)
		return NULL;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = 0; i < hl; i++) {
		struct pollfd p = { .fd = c, .events = POLLIN };

		if (send(c, hdr + i, 1, MSG_NOSIGNAL) != 1)
			break;
		sc->sent++;
		/* a second until the next byte, unless the reset comes first */
		if (poll(&p, 1, 1000) == 1) {
			char b;

			if (recv(c, &b, 1, 0) <= 0)
				break;
		}
	}
	sc->reset_after = now_s() - t0;
	close(c);
	return NULL;
}

static int run_slow(int port, int timeout_ms, int n_good)
{
	struct slow_client sc = { .port = port };
	struct loop_server ls;
	double slowest, lo = timeout_ms * 0.8 / 1000, hi = timeout_ms * 1.2 / 1000;
	int ok;

	loop_start(&ls, port);
	pthread_create(&sc.thread, NULL, slow_main, &sc);
	sleep_ms(100);
	ok = good_requests(port, n_good, &slowest);
	pthread_join(sc.thread, NULL);
	loop_stop(&ls);
	CHECK(ok == n_good, "slow: only %d of %d good connections were served", ok, n_good);
	CHECK(sc.reset_after >= lo && sc.reset_after <= hi, "slow: reset after %.3f s, not within %.3f..%.3f s",
	      sc.reset_after, lo, hi);
	printf("slow: the slow sender (%d header bytes sent) was reset after %.3f s (timeout %d ms, allowed "
	       "%.2f..%.2f s); %d/%d good connections served meanwhile, slowest %.1f ms\n",
	       sc.sent, sc.reset_after, timeout_ms, lo, hi, ok, n_good, slowest * 1000);
	return 0;
}

/* ---- load -------------------------------------------------------------------------------- */

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* Raise the open-file limit as far as the hard limit allows (a process may not go past it). */
static void more_files(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * The held clients live in a child process (a process may have 20,000 files
 * here: the two ends of 10,000 connections would not fit in one). It opens
 * them, sends each the first 7 bytes of a v2 signature, reports the count on
 * `up`, and closes them all when `down` says so.
 */
static pid_t spawn_held_clients(int port, int n, int *up, int *down)
{
	static const __u8 partial[] = "\r\n\r\n\x00\r\nQ";
	int p_up[2], p_down[2];
	pid_t pid;

	if (pipe(p_up) || pipe(p_down))
		return -1;
	pid = fork();
	if (pid == 0) {
		int *fds = calloc((size_t)n, sizeof(int)), opened = 0;
		char go;

		more_files();
		for (int i = 0; i < n; i++) {
			fds[i] = dial(port, TRUSTED);
			if (fds[i] < 0 || send_all(fds[i], partial, 7))
				break;
			opened++;
		}
		if (write(p_up[1], &opened, sizeof(opened)) != sizeof(opened) || read(p_down[0], &go, 1) < 0)
			_exit(1);
		for (int i = 0; i < opened; i++)
			close(fds[i]);
		_exit(0);
	}
	close(p_up[1]);
	close(p_down[0]);
	*up = p_up[0];
	*down = p_down[1];
	return pid;
}

static int run_load(int port, int n_held, int n_good)
{
	struct loop_server ls;
	int up = -1, down = -1, opened = 0, ok, status;
	double t0, slowest;
	pid_t child;

	more_files();
	loop_start(&ls, port);
	t0 = now_s();
	child = spawn_held_clients(port, n_held, &up, &down);
	if (child < 0 || read(up, &opened, sizeof(opened)) != sizeof(opened))
		opened = 0;
	/* Wait until the server has accepted them all: they sit in its epoll set, never readable. */
	for (int i = 0; i < 200 && ls.accepted < (unsigned long)opened; i++)
		sleep_ms(50);
	printf("load: %d connections with a pending header opened in %.2f s; server accepted %lu\n", opened,
	       now_s() - t0, ls.accepted);
	CHECK(opened == n_held, "load: only %d of %d connections opened", opened, n_held);
	/* trust.sh reads the kernel's figures now (pending entries, memory), then sends SIGUSR1. */
	block_go_ahead();
	printf("LOAD_HELD %d %d\n", opened, (int)getpid());
	fflush(stdout);
	CHECK(wait_go_ahead(30), "load: no go-ahead from trust.sh in 30 s");
	ok = good_requests(port, n_good, &slowest);
	CHECK(ok == n_good, "load: only %d of %d good connections served beside %d pending ones", ok, n_good,
	      opened);
	printf("load: %d/%d good connections served while %d headers were pending; slowest %.1f ms; "
	       "server RSS %ld KiB\n", ok, n_good, opened, slowest * 1000, rss_kib());
	loop_stop(&ls); /* first: its counters are final once it has stopped */
	CHECK(ls.served == (unsigned long)ok, "load: the server answered %lu, the clients saw %d", ls.served, ok);
	CHECK(ls.errors == 0, "load: %lu pending connections became readable or failed", ls.errors);
	{
		/* (each call before its CHECK: the order a function's arguments are evaluated in is open) */
		bool told = write(down, "x", 1) == 1;
		pid_t w;

		CHECK(told, "load: could not tell the held clients to close: %s", strerror(errno));
		w = child > 0 ? waitpid(child, &status, 0) : -1;

		CHECK(w == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "load: the held clients' process failed (%s)",
		      w != child ? strerror(errno) : WIFEXITED(status) ? "exit status not 0" : "killed by a signal");
	}
	close(up);
	close(down);
	return 0;
}

/* ---- stream (restart) ------------------------------------------------------------------- */

/* Byte i of connection k's stream: a pattern a lost, repeated or reordered byte would break. */
static __u8 pattern(int k, unsigned long long i)
{
	return (__u8)((i * 131 + (unsigned long long)k * 7 + (i >> 10)) & 0xff);
}

struct streamer {
	pthread_t thread;
	int fd;            /* the server side (after ppbpf_accept) */
	int k;
	volatile int *stop;
	unsigned long long received;
	int bad;           /* first mismatch, or an error */
};

static void *reader_main(void *arg)
{
	struct streamer *st = arg;
	__u8 buf[16384];

	for (;;) {
		ssize_t n = recv(st->fd, buf, sizeof(buf), 0);

		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			st->bad = 1;
			break;
		}
		for (ssize_t j = 0; j < n; j++)
			if (buf[j] != pattern(st->k, st->received + (unsigned long long)j) && !st->bad)
				st->bad = 2;
		st->received += (unsigned long long)n;
	}
	return NULL;
}

struct writer {
	pthread_t thread;
	int fd, k;
	long pause_ms;     /* between two 4 KiB writes */
	volatile int *stop;
	unsigned long long sent;
	int failed;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	__u8 buf[4096];

	while (!*w->stop) {
		for (size_t j = 0; j < sizeof(buf); j++)
			buf[j] = pattern(w->k, w->sent + j);
		if (send_all(w->fd, buf, sizeof(buf))) {
			w->failed = 1;
			break;
		}
		w->sent += sizeof(buf);
		sleep_ms(w->pause_ms); /* a steady stream, not a flood: 100 of them on 2 CPUs */
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/*
 * n streams until trust.sh's go-ahead (which it gives once it has restarted
 * the daemon and checked the table), at most STREAM_MAX_S. bytes: about how
 * many the streams send in all (paced over `seconds`), or 0 for 4 KiB each
 * every 2 ms.
 */
#define STREAM_MAX_S 120
static int run_stream(int port, int n, int seconds, unsigned long long bytes)
{
	struct streamer *rd = calloc((size_t)n, sizeof(*rd));
	struct writer *wr = calloc((size_t)n, sizeof(*wr));
	int lfd = listen_on(port), broken = 0;
	volatile int stop = 0;
	unsigned long long total = 0;
	long pause_ms = 2;
	double t0;
	__u8 hdr[64];

	if (bytes) { /* writes per stream = bytes / n / 4 KiB, spread over the seconds */
		unsigned long long writes = bytes / (unsigned long long)n / 4096;

		if (writes && seconds * 1000ULL / writes > (unsigned long long)pause_ms)
			pause_ms = (long)(seconds * 1000ULL / writes);
	}
	block_go_ahead(); /* before the threads: they inherit the mask */
	for (int k = 0; k < n; k++) {
		int hl = forged_v2(hdr, sizeof(hdr), 60, 20000 + k);

		wr[k].fd = dial(port, TRUSTED);
		wr[k].k = rd[k].k = k;
		wr[k].pause_ms = pause_ms;
		wr[k].stop = rd[k].stop = &stop;
		CHECK(wr[k].fd >= 0 && !send_all(wr[k].fd, hdr, (size_t)hl), "stream %d: the client failed", k);
		rd[k].fd = ppbpf_accept(lfd, NULL, NULL, 0);
		if (wr[k].fd < 0 || rd[k].fd < 0) {
			CHECK(false, "stream %d: not accepted", k);
			n = k; /* only the streams started so far are joined below */
			if (wr[k].fd >= 0)
				close(wr[k].fd);
			if (rd[k].fd >= 0)
				close(rd[k].fd);
			break;
		}
		CHECK(!pthread_create(&wr[k].thread, NULL, writer_main, &wr[k]) &&
			      !pthread_create(&rd[k].thread, NULL, reader_main, &rd[k]),
		      "stream %d: no thread", k);
	}
	printf("STREAMING %d %d\n", n, (int)getpid());
	fflush(stdout);
	t0 = now_s();
	CHECK(wait_go_ahead(STREAM_MAX_S), "stream: no go-ahead from trust.sh in %d s", STREAM_MAX_S);
	stop = 1;
	for (int k = 0; k < n; k++) {
		pthread_join(wr[k].thread, NULL);
		pthread_join(rd[k].thread, NULL);
		if (wr[k].failed || rd[k].bad || rd[k].received != wr[k].sent) {
			broken++;
			CHECK(false, "stream %d: sent %llu, received %llu, write %s, read %s", k, wr[k].sent,
			      rd[k].received, wr[k].failed ? "failed" : "ok",
			      rd[k].bad == 2 ? "corrupt" : rd[k].bad ? "failed" : "ok");
		}
		total += rd[k].received;
		close(wr[k].fd);
		close(rd[k].fd);
	}
	printf("stream: %d connections, %llu bytes in %.1f s (a 4 KiB write every %ld ms each), %d broken\n", n,
	       total, now_s() - t0, pause_ms, broken);
	close(lfd);
	free(rd);
	free(wr);
	return 0;
}

/* ---- table full -------------------------------------------------------------------------- */

static int run_tablefull(int port, int capacity)
{
	int lfd = listen_on(port), *c = calloc((size_t)capacity + 2, sizeof(int)),
	    *s = calloc((size_t)capacity + 2, sizeof(int));
	__u8 hdr[64];
	int hl = forged_v2(hdr, sizeof(hdr), 70, 50000);

	for (int i = 0; i < capacity; i++) {
		struct ppbpf_info info;

		c[i] = dial(port, TRUSTED);
		send_all(c[i], hdr, (size_t)hl);
		s[i] = ppbpf_accept_opts(lfd, NULL, NULL, 0, &(struct ppbpf_accept_opts){ .info = &info });
		CHECK(s[i] >= 0 && info.state == PPBPF_STATE_DONE, "table: connection %d of %d not tracked", i + 1,
		      capacity);
	}
	expect_rejected(lfd, port, TRUSTED, hdr, (size_t)hl, "the connection past the table's capacity");
	/* A closed connection frees its entry: the next one is tracked again. */
	close(c[0]);
	close(s[0]);
	sleep_ms(200);
	{
		struct ppbpf_info info;
		int cc = dial(port, TRUSTED), ss;

		send_all(cc, hdr, (size_t)hl);
		ss = ppbpf_accept_opts(lfd, NULL, NULL, 0, &(struct ppbpf_accept_opts){ .info = &info });
		CHECK(ss >= 0 && info.state == PPBPF_STATE_DONE, "table: a freed entry was not reused");
		close(ss);
		close(cc);
	}
	printf("tablefull: capacity %d: connection %d reset; after one closed, a new one is tracked\n", capacity,
	       capacity + 1);
	for (int i = 1; i < capacity; i++) {
		close(c[i]);
		close(s[i]);
	}
	close(lfd);
	free(c);
	free(s);
	return 0;
}

/* ---- modes: what trust.sh runs ---------------------------------------------------------- */

static int mode_spoof(char **a)
{
	return run_spoof(atoi(a[0]), atoi(a[1]), atoi(a[2]));
}

static int mode_plain(char **a)
{
	return run_plain(atoi(a[0]), atoi(a[1]));
}

static int mode_malformed(char **a)
{
	return run_malformed(atoi(a[0]), atoi(a[1]), atoi(a[2]));
}

static int mode_slow(char **a)
{
	return run_slow(atoi(a[0]), atoi(a[1]), atoi(a[2]));
}

static int mode_load(char **a)
{
	return run_load(atoi(a[0]), atoi(a[1]), atoi(a[2]));
}

static int mode_stream(char **a)
{
	return run_stream(atoi(a[0]), atoi(a[1]), atoi(a[2]), a[3] ? strtoull(a[3], NULL, 10) : 0);
}

static int mode_tablefull(char **a)
{
	return run_tablefull(atoi(a[0]), atoi(a[1]));
}

static int mode_honoured(char **a)
{
	return run_honoured(atoi(a[0]), atoi(a[1]), a[2]);
}

static int mode_untracked(char **a)
{
	return run_untracked(atoi(a[0]), atoi(a[1]), a[2]);
}

static int mode_flood(char **a)
{
	return run_flood(atoi(a[0]), atoi(a[1]), atoi(a[2]));
}

int main(int argc, char **argv)
{
	/* in the order trust.sh first runs them */
	static const struct test_mode modes[] = {
		{ "spoof", "PLAIN_PORT REJECT_PORT N", 3, 3, mode_spoof },
		{ "malformed", "REQ_PORT V2ONLY_PORT SMALL_PORT", 3, 3, mode_malformed },
		{ "slow", "PORT TIMEOUT_MS N_GOOD", 3, 3, mode_slow },
		{ "load", "PORT N_HELD N_GOOD", 3, 3, mode_load },
		{ "stream", "PORT N SECONDS [BYTES]", 3, 4, mode_stream },
		{ "plain", "PORT N", 2, 2, mode_plain },
		{ "tablefull", "PORT CAPACITY", 2, 2, mode_tablefull },
		{ "honoured", "PORT N FROM", 3, 3, mode_honoured },
		{ "untracked", "PORT N FROM", 3, 3, mode_untracked },
		{ "flood", "PORT SECONDS THREADS", 3, 3, mode_flood },
	};

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return T_RUN_MODE(argc, argv, "trust_test", modes);
}
