// SPDX-License-Identifier: MIT
/*
 * Network benchmarks for `make bench` (driven by scripts/bench.sh, which puts
 * each side in the right cgroup and alternates the configurations):
 *
 *   bench_net server PORT MODE       MODE: plain (accept4) or ppbpf (ppbpf_accept
 *                                    + ppbpf_get; kernel or userspace fallback);
 *                                    transparent (accept4, the peer must be the
 *                                    header's); sent (ppbpf_accept, the header's
 *                                    source must be BENCH_SRC: the sending side)
 *   bench_net rate PORT HEADER SECONDS THREADS [http]
 *                                    connections per second: connect, send the
 *                                    header (v2|v1|none; self: a v2 header with
 *                                    the connection's own addresses, as the
 *                                    sending side writes it) and a 100-byte request,
 *                                    read the 100-byte reply, close; with p50 and
 *                                    p99 time to the reply's first byte. http: the
 *                                    request is a 100-byte HTTP/1.0 GET and the
 *                                    reply is read to EOF (nginx)
 *   bench_net sink PORT [ppbpf]      bulk receiver: counts bytes, prints Gbit/s;
 *                                    ppbpf: accepted with ppbpf_accept (header consumed)
 *   bench_net bulk PORT BYTES [v2]   bulk sender; v2: a PROXY v2 header first
 *   bench_net calls PORT             what one call of each kind the library makes
 *                                    costs, on a connection to itself through a
 *                                    tracked PORT (ns: the query, an empty recv,
 *                                    a poll that finds the socket readable)
 *
 * Results are printed as one JSON object on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>

#define REQ_LEN 100
#define REPLY_LEN 100
/* The header's source address, 192.0.2.1: what a server must see for its reply to count. */
#define HDR_SRC 0xc0000201u
#define HDR_SRC_BYTES "\xc0\x00\x02\x01"
/* Header source ports of rate worker i: a range of its own (go-mmproxy binds each one). */
#define PORTS_PER_WORKER 600
#define FIRST_SRC_PORT 20000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Where servers listen and clients connect: 127.0.0.1, or BENCH_ADDR (an
 * IPv4 address: the veth pair of the transparent-mode rows).
 */
static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	const char *addr = getenv("BENCH_ADDR");

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (addr && inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "bench_net: BENCH_ADDR '%s' is not an IPv4 address\n", addr);
		exit(2);
	}
	return a;
}

static int listen_port(int port)
{
	struct sockaddr_in a = loopback(port);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		perror("bench_net: failed to listen");
		exit(1);
	}
	return fd;
}

static int read_exact(int fd, char *buf, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, buf, n, 0);

		if (r <= 0)
			return -1;
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One request/reply per connection, forever. ppbpf mode learns the client first. */
/*
 * The server: accept, read the 100-byte request, reply, close. ppbpf: with
 * ppbpf_accept; transparent: a plain accept() whose address must be the
 * header's source (the kernel took the header out and rewrote the peer).
 */
enum server_kind { SERVER_PLAIN, SERVER_PPBPF, SERVER_TRANSPARENT, SERVER_SENT };

/* sent: the header's source must be this address (BENCH_SRC), the client's own, whoever wrote the header. */
static int sent_source_ok(const struct ppbpf_info *info)
{
	const char *want = getenv("BENCH_SRC");
	struct in_addr a;

	return info->state == PPBPF_STATE_DONE && want && inet_pton(AF_INET, want, &a) == 1 &&
	       !memcmp(info->src_addr, &a, 4);
}

__attribute__((noreturn)) static void run_server(int port, enum server_kind kind)
{
	int ppbpf = kind == SERVER_PPBPF || kind == SERVER_SENT;
	int lfd = listen_port(port);
	char req[REQ_LEN], reply[REPLY_LEN];

	memset(reply, 'r', sizeof(reply));
	for (;;) {
		struct sockaddr_storage orig;
		socklen_t olen = sizeof(orig);
		struct ppbpf_info info;
		size_t got = 0;
		int fd;

		if (ppbpf) {
			/* the request's first bytes come with the header, in the read that consumes it */
			struct ppbpf_accept_opts o = { .info = &info, .data = req, .data_cap = sizeof(req) };

			fd = ppbpf_accept_opts(lfd, (struct sockaddr *)&orig, &olen, SOCK_CLOEXEC, &o);
			got = o.data_len;
		} else {
			fd = accept4(lfd, (struct sockaddr *)&orig, &olen, SOCK_CLOEXEC);
		}
		if (fd < 0)
			continue;
		/* A wrong answer must not pass for a fast one: the client counts 'X' replies as failures. */
		if (kind == SERVER_TRANSPARENT)
			reply[0] = ((struct sockaddr_in *)&orig)->sin_addr.s_addr == htonl(HDR_SRC) ? 'r' : 'X';
		else if (kind == SERVER_SENT)
			reply[0] = sent_source_ok(&info) ? 'r' : 'X';
		else
			reply[0] = !ppbpf || (info.state == PPBPF_STATE_DONE && !memcmp(info.src_addr, HDR_SRC_BYTES, 4))
					   ? 'r'
					   : 'X';
		if (!read_exact(fd, req + got, sizeof(req) - got) && req[0] == 'q' && req[REQ_LEN - 1] == 'q')
			send(fd, reply, sizeof(reply), MSG_NOSIGNAL);
		close(fd);
	}
}

static enum server_kind server_kind(const char *name)
{
	if (!strcmp(name, "ppbpf"))
		return SERVER_PPBPF;
	if (!strcmp(name, "sent"))
		return SERVER_SENT;
	return !strcmp(name, "transparent") ? SERVER_TRANSPARENT : SERVER_PLAIN;
}

/* Latency samples kept per client thread (enough for a few seconds at full rate). */
#define MAX_SAMPLES (1 << 18)

struct rate_worker {
	pthread_t thread;
	int port, http, index, self; /* self: the header carries this connection's own addresses */
	const unsigned char *hdr;
	size_t hdr_len;
	double until;
	long done, failed;
	float *us; /* time to the reply's first byte, microseconds */
	long n_us;
};

/* Read the reply: REPLY_LEN bytes starting with 'r', or (http) a 200 answer up to EOF. */
static int read_reply(int fd, int http, double *first_byte)
{
	char buf[1024];
	ssize_t r = recv(fd, buf, http ? sizeof(buf) : REPLY_LEN, 0);
	size_t got;

	*first_byte = now_s();
	if (r <= 0)
		return -1;
	got = (size_t)r;
	if (http) {
		if (got < 12 || memcmp(buf, "HTTP/1.1 200", 12))
			return -1;
		while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
			;
		return r < 0 ? -1 : 0;
	}
	if (buf[0] != 'r')
		return -1;
	return got == REPLY_LEN ? 0 : read_exact(fd, buf + got, REPLY_LEN - got);
}

/* "self": the application writes the header the sending side would: its own address and port, then the server's. */
static int self_header(int fd, const struct sockaddr_in *server, char *msg)
{
	struct sockaddr_in me;
	socklen_t len = sizeof(me);

	if (getsockname(fd, (struct sockaddr *)&me, &len))
		return -1;
	memcpy(msg + 16, &me.sin_addr, 4);
	memcpy(msg + 20, &server->sin_addr, 4);
	memcpy(msg + 24, &me.sin_port, 2);
	memcpy(msg + 26, &server->sin_port, 2);
	return 0;
}

static void *rate_main(void *arg)
{
	struct rate_worker *w = arg;
	struct sockaddr_in a = loopback(w->port);
	char msg[512];
	size_t n = w->hdr_len + REQ_LEN;
	struct linger lg = { 1, 0 };

	memcpy(msg, w->hdr, w->hdr_len);
	if (w->http) { /* GET / HTTP/1.0, padded with a header to exactly REQ_LEN bytes */
		char *r = msg + w->hdr_len;
		int k = snprintf(r, REQ_LEN + 1, "GET / HTTP/1.0\r\nX-Pad: ");

		memset(r + k, 'q', REQ_LEN - (size_t)k - 4);
		memcpy(r + REQ_LEN - 4, "\r\n\r\n", 4);
	} else {
		memset(msg + w->hdr_len, 'q', REQ_LEN);
	}
	for (long k = 0; now_s() < w->until; k++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
		double t0 = now_s(), t1;
		__u16 sport = htons((__u16)(FIRST_SRC_PORT + w->index * PORTS_PER_WORKER + k % PORTS_PER_WORKER));

		/* a v2 TCP4 header's source port (bytes 24-25) differs for each connection */
		if (w->hdr_len >= 28 && w->hdr[12] == 0x21 && w->hdr[13] == 0x11)
			memcpy(msg + 24, &sport, 2);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* RST on close: no TIME_WAIT pile-up on the client side over a long run */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) || (w->self && self_header(fd, &a, msg)) ||
		    send(fd, msg, n, MSG_NOSIGNAL) != (ssize_t)n || read_reply(fd, w->http, &t1)) {
			w->failed++;
		} else {
			w->done++;
			if (w->n_us < MAX_SAMPLES)
				w->us[w->n_us++] = (float)((t1 - t0) * 1e6);
		}
		close(fd);
	}
	return NULL;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static int run_rate(int port, const char *header, double seconds, int threads, int http)
{
	static const struct ppbpf_build v2 = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
					       .src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 2 },
					       .src_port = 51000, .dst_port = 443 };
	struct ppbpf_build b = v2;
	static struct rate_worker w[64];
	unsigned char hdr[256];
	int hdr_len = 0;
	long done = 0, failed = 0, n_us = 0;
	float *all;
	double t0, elapsed;

	int self = !strcmp(header, "self");

	if (!strcmp(header, "v1"))
		b.version = 1;
	if (strcmp(header, "none"))
		hdr_len = ppbpf_build(&b, hdr, sizeof(hdr));
	if (threads < 1 || threads > 64 || hdr_len < 0)
		return 2;
	t0 = now_s();
	for (int i = 0; i < threads; i++) {
		w[i] = (struct rate_worker){ .port = port, .http = http, .index = i, .self = self, .hdr = hdr,
					     .hdr_len = (size_t)hdr_len,
					     .until = t0 + seconds, .us = malloc(MAX_SAMPLES * sizeof(float)) };
		pthread_create(&w[i].thread, NULL, rate_main, &w[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(w[i].thread, NULL);
		done += w[i].done;
		failed += w[i].failed;
		n_us += w[i].n_us;
	}
	elapsed = now_s() - t0;
	all = malloc((size_t)(n_us ? n_us : 1) * sizeof(float));
	n_us = 0;
	for (int i = 0; i < threads; i++) {
		memcpy(all + n_us, w[i].us, (size_t)w[i].n_us * sizeof(float));
		n_us += w[i].n_us;
		free(w[i].us);
	}
	qsort(all, (size_t)n_us, sizeof(float), cmp_float);
	printf("{\"connections\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"per_second\":%.1f,"
	       "\"p50_us\":%.2f,\"p99_us\":%.2f}\n",
	       done, failed, elapsed, (double)done / elapsed, n_us ? all[n_us / 2] : 0.0,
	       n_us ? all[n_us * 99 / 100] : 0.0);
	free(all);
	return failed > done / 100 ? 1 : 0;
}

/* User + system CPU time of this process. */
static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* Count bytes from one connection; print the rate. ppbpf: accept it with ppbpf_accept (the header is consumed). */
static int run_sink(int port, int ppbpf)
{
	int lfd = listen_port(port), fd = ppbpf ? ppbpf_accept(lfd, NULL, NULL, SOCK_CLOEXEC)
						 : accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	static char buf[1 << 20];
	double t0 = 0;
	long long total = 0;

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r <= 0)
			break;
		if (!total)
			t0 = now_s();
		total += r;
	}
	printf("{\"bytes\":%lld,\"seconds\":%.3f,\"gbit_per_second\":%.3f,\"cpu_seconds\":%.4f}\n", total,
	       now_s() - t0, (double)total * 8 / (now_s() - t0) / 1e9, cpu_seconds());
	return 0;
}

static int run_bulk(int port, long long bytes, int header)
{
	static const struct ppbpf_build v2 = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
					       .src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 2 },
					       .src_port = 51000, .dst_port = 443 };
	struct sockaddr_in a = loopback(port);
	static char buf[256 << 10];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned char hdr[64];
	int hl = header ? ppbpf_build(&v2, hdr, sizeof(hdr)) : 0;

	memset(buf, 'x', sizeof(buf));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("bench_net: failed to connect");
		return 1;
	}
	if (hl > 0 && send(fd, hdr, (size_t)hl, MSG_NOSIGNAL) != hl)
		return 1;
	while (bytes > 0) {
		ssize_t w = send(fd, buf, bytes < (long long)sizeof(buf) ? (size_t)bytes : sizeof(buf), MSG_NOSIGNAL);

		if (w <= 0)
			return 1;
		bytes -= w;
	}
	close(fd);
	printf("{\"cpu_seconds\":%.4f}\n", cpu_seconds());
	return 0;
}

#define CALLS 200000

/* Mean ns of `calls` runs of one call. */
#define TIME_CALLS(expr) ({                                \
	double t0 = now_s();                               \
	for (int i_ = 0; i_ < CALLS; i_++)                 \
		(void)(expr);                              \
	(now_s() - t0) * 1e9 / CALLS;                      \
})

/* A judged connection to ourselves through the tracked port, then the cost of each kind of call on it. */
static int run_calls(int port)
{
	static const struct ppbpf_build v2 = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
						.src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 1 },
						.src_port = 51000, .dst_port = 443 };
	struct sockaddr_in a = loopback(port);
	unsigned char hdr[64], byte;
	int lfd = listen_port(port), c = socket(AF_INET, SOCK_STREAM, 0), hl = ppbpf_build(&v2, hdr, sizeof(hdr)), s;
	struct ppbpf_info info;
	struct pollfd p;

	if (c < 0 || hl < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) || send(c, hdr, (size_t)hl, 0) != hl ||
	    send(c, "x", 1, 0) != 1)
		return 1;
	s = ppbpf_accept(lfd, NULL, NULL, 0);
	if (s < 0 || ppbpf_get(s, &info) || info.state != PPBPF_STATE_DONE) {
		fprintf(stderr, "bench_net calls: port %d is not tracked (attach it first)\n", port);
		return 1;
	}
	p = (struct pollfd){ .fd = s, .events = POLLIN };
	/* the byte stays queued: poll finds it; the empty recv is on the client's side */
	printf("{\"getsockopt_ns\":%.1f,\"recv_empty_ns\":%.1f,\"poll_ns\":%.1f}\n", TIME_CALLS(ppbpf_get(s, &info)),
	       TIME_CALLS(recv(c, &byte, 1, MSG_DONTWAIT)), TIME_CALLS(poll(&p, 1, 0)));
	close(s);
	close(c);
	close(lfd);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && !strcmp(argv[1], "server"))
		run_server(atoi(argv[2]), server_kind(argv[3]));
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "rate"))
		return run_rate(atoi(argv[2]), argv[3], atof(argv[4]), atoi(argv[5]), argc == 7 && !strcmp(argv[6], "http"));
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "sink"))
		return run_sink(atoi(argv[2]), argc == 4 && !strcmp(argv[3], "ppbpf"));
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "bulk"))
		return run_bulk(atoi(argv[2]), atoll(argv[3]), argc == 5 && !strcmp(argv[4], "v2"));
	if (argc == 3 && !strcmp(argv[1], "calls"))
		return run_calls(atoi(argv[2]));
	fprintf(stderr, "usage: bench_net server PORT plain|ppbpf|transparent|sent | rate PORT v2|v1|self|none SECONDS THREADS [http] |\n"
			"       sink PORT [ppbpf] | bulk PORT BYTES [v2] | calls PORT\n");
	return 2;
}
