// SPDX-License-Identifier: MIT
/*
 * The kernel receive path against real sockets. Run by kernel.sh inside a
 * test cgroup where ppbpf is attached ("kernel" mode), and again in a cgroup
 * with nothing attached ("fallback" mode, opted in with PPBPF_FALLBACK_TRUST),
 * where ppbpf_accept must give the same answers by parsing in userspace.
 *
 * Every connection: a client thread sends a crafted header and a payload in
 * some pattern; the server checks what the kernel recorded (ppbpf_get,
 * ppbpf_wait, the TLV bytes) or what ppbpf_accept returned, and that the
 * stream it reads is byte for byte what was sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <dirent.h>
#include <bpf/bpf.h>
#include <ppbpf/ppbpf.h>
#include "../unit/cases.h"
#include "../unit/prng.h"

/* ---- configuration from kernel.sh ------------------------------------------------ */

static struct {
	int fallback;      /* nothing attached: userspace parsing */
	int port_req;      /* policy: header required, trust loopback */
	int port_rw;       /* policy: --rewrite-peer */
	int port_opt;      /* policy: --optional */
	int port_none;     /* no policy */
	int port_trust2;   /* policy: --trust 127.0.0.2 only */
	const char *pin_dir, *cli;
	int n_in_a_row;    /* connections of the in-a-row test, */
	int n_closed;      /* and of the leak test (kernel.sh's PPBPF_SCALE) */
} cfg;

/* ---- header cases ------------------------------------------------------------------- */

#define MAX_HDR 2048

struct hcase {
	const char *name;
	__u8 bytes[MAX_HDR];
	int len;
	struct ppbpf_info want; /* the fields the record must have */
	int tlv_off;            /* where the TLVs start in bytes */
};

static struct hcase cases[16];
static int n_cases;

static const char *sub_texts[] = { "TLSv1.3", "client.example", "TLS_AES_128_GCM_SHA256", "RSA-SHA256",
				   "RSA2048", "X25519", "rsa_pss_rsae_sha256" };

static void add_case(const char *name, struct ppbpf_build *b, const struct ppbpf_tlv *tlvs, int n_tlvs)
{
	struct hcase *c = &cases[n_cases++];
	static const int block[] = { [PPBPF_FAM_UNSPEC] = 0, [PPBPF_FAM_TCP4] = 12, [PPBPF_FAM_UDP4] = 12,
				     [PPBPF_FAM_TCP6] = 36, [PPBPF_FAM_UDP6] = 36, [PPBPF_FAM_UNIX_STREAM] = 216,
				     [PPBPF_FAM_UNIX_DGRAM] = 216, [PPBPF_FAM_UNKNOWN] = 0 };
	int af = ppbpf_family_af(b->family);

	b->tlvs = tlvs;
	b->n_tlvs = (unsigned int)n_tlvs;
	c->name = name;
	c->len = ppbpf_build(b, c->bytes, sizeof(c->bytes));
	if (c->len <= 0)
		abort();
	c->want.state = PPBPF_STATE_DONE;
	c->want.version = b->version;
	c->want.command = b->command;
	c->want.family = b->command == PPBPF_CMD_LOCAL ? PPBPF_FAM_UNSPEC : b->family;
	c->want.header_len = (__u32)c->len;
	if (b->command == PPBPF_CMD_PROXY && (af == AF_INET || af == AF_INET6)) {
		memcpy(c->want.src_addr, b->src_addr, 16);
		memcpy(c->want.dst_addr, b->dst_addr, 16);
		c->want.src_port = b->src_port;
		c->want.dst_port = b->dst_port;
	}
	c->tlv_off = b->version == 2 ? 16 + block[b->family] : c->len;
	c->want.tlv_len = (__u32)(c->len - c->tlv_off);
	c->want.tlv_stored = c->want.tlv_len < PPBPF_TLV_CAP_DEFAULT ? c->want.tlv_len : PPBPF_TLV_CAP_DEFAULT;
	if (c->want.tlv_len > PPBPF_TLV_CAP_DEFAULT)
		c->want.flags |= PPBPF_INFO_TLV_TRUNCATED;
}

static void build_cases(void)
{
	static __u8 uid[128], big[700], ssl[512];
	static struct ppbpf_tlv subs[8], all[12], two[2], noop[1], many[1];
	struct ppbpf_build b4 = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
				  .src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 2 },
				  .src_port = 51000, .dst_port = 443 };
	struct ppbpf_build b6 = b4, b;
	int ssl_len;

	b6.family = PPBPF_FAM_TCP6;
	ppbpf_parse_ip(AF_INET6, "2001:db8::1", b6.src_addr);
	ppbpf_parse_ip(AF_INET6, "2001:db8:0:1::2", b6.dst_addr);
	b6.src_port = 1234;
	memset(uid, 'u', sizeof(uid));
	memset(big, 'b', sizeof(big));
	for (int i = 0; i < 7; i++)
		subs[i] = (struct ppbpf_tlv){ (__u8)(PPBPF_SSL_VERSION + i), (__u16)strlen(sub_texts[i]),
					      (const __u8 *)sub_texts[i] };
	subs[7] = (struct ppbpf_tlv){ PPBPF_SSL_CLIENT_CERT, 4, (const __u8 *)"\x30\x82\x01\x00" };
	ssl_len = ppbpf_build_ssl(PPBPF_SSL_CLIENT_SSL | PPBPF_SSL_CLIENT_CERT_CONN, 0, subs, 8, ssl, sizeof(ssl));
	two[0] = (struct ppbpf_tlv){ PPBPF_TLV_ALPN, 2, (const __u8 *)"h2" };
	two[1] = (struct ppbpf_tlv){ PPBPF_TLV_AUTHORITY, 11, (const __u8 *)"example.com" };
	noop[0] = (struct ppbpf_tlv){ PPBPF_TLV_NOOP, 3, (const __u8 *)"pad" };
	many[0] = (struct ppbpf_tlv){ 0xF1, sizeof(big), big };
	all[0] = two[0];
	all[1] = two[1];
	all[2] = (struct ppbpf_tlv){ PPBPF_TLV_UNIQUE_ID, sizeof(uid), uid };
	all[3] = (struct ppbpf_tlv){ PPBPF_TLV_SSL, (__u16)ssl_len, ssl };
	all[4] = (struct ppbpf_tlv){ PPBPF_TLV_NETNS, 4, (const __u8 *)"blue" };
	all[5] = (struct ppbpf_tlv){ PPBPF_TLV_AWS, 14, (const __u8 *)"\x01vpce-0a1b2c3d" };
	all[6] = (struct ppbpf_tlv){ PPBPF_TLV_AZURE, 5, (const __u8 *)"\x01\xc1\x45\x00\x21" };
	all[7] = (struct ppbpf_tlv){ PPBPF_TLV_GCP, 8, (const __u8 *)"\xff\xff\xff\xff\xc0\xa8\x64\x02" };
	all[8] = (struct ppbpf_tlv){ 0xF0, 12, (const __u8 *)"experimental" };

	b = b4, b.version = 1, add_case("v1 TCP4", &b, NULL, 0);
	b = b6, b.version = 1, add_case("v1 TCP6", &b, NULL, 0);
	b = b4, b.version = 1, b.family = PPBPF_FAM_UNKNOWN, add_case("v1 UNKNOWN", &b, NULL, 0);
	b = b4, add_case("v2 TCP4", &b, NULL, 0);
	b = b6, add_case("v2 TCP6 ALPN AUTHORITY", &b, two, 2);
	b = b4, b.family = PPBPF_FAM_UDP4, add_case("v2 UDP4", &b, NULL, 0);
	b = b6, b.family = PPBPF_FAM_UDP6, add_case("v2 UDP6", &b, NULL, 0);
	b = b4, b.family = PPBPF_FAM_UNIX_STREAM;
	memcpy(b.src_path, "/run/client.sock", 16);
	memcpy(b.dst_path, "\0abstract", 9);
	add_case("v2 UNIX stream", &b, NULL, 0);
	b.family = PPBPF_FAM_UNIX_DGRAM, add_case("v2 UNIX dgram", &b, two, 1);
	b = b4, b.family = PPBPF_FAM_UNSPEC, add_case("v2 PROXY UNSPEC", &b, two, 2);
	b = b4, b.command = PPBPF_CMD_LOCAL, b.family = PPBPF_FAM_UNSPEC, add_case("v2 LOCAL", &b, noop, 1);
	b = b4, b.flags = PPBPF_BUILD_CRC32C, add_case("v2 TCP4 every TLV + CRC32C", &b, all, 9);
	b = b6, b.flags = PPBPF_BUILD_CRC32C, add_case("v2 TCP6 TLVs over the cap + CRC32C", &b, many, 1);
}

/* The header case of this name. */
static const struct hcase *find_case(const char *name)
{
	for (int i = 0; i < n_cases; i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	abort();
}

/* ---- sockets ---------------------------------------------------------------------------- */

enum transport { T_V4, T_V6, T_V4_ON_V6, T_MAX }; /* listener family, and client family on it */

/* Listeners open in the current test: a failing test jumps out, so teardown closes them. */
static int open_listeners[8], n_open_listeners;

static int teardown_listeners(void **state)
{
	(void)state;
	while (n_open_listeners)
		close(open_listeners[--n_open_listeners]);
	return 0;
}

static void close_listener(int fd)
{
	for (int i = 0; i < n_open_listeners; i++)
		if (open_listeners[i] == fd)
			open_listeners[i] = open_listeners[--n_open_listeners];
	close(fd);
}

static int make_listener(int port, enum transport t, int defer)
{
	int one = 1, af = t == T_V4 ? AF_INET : AF_INET6, fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((__u16)port) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons((__u16)port) };
	int secs = 5, rc;
	struct timeval stuck = { 20, 0 };

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	if (defer)
		assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)), 0);
	if (af == AF_INET) {
		inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
		rc = bind(fd, (struct sockaddr *)&in, sizeof(in));
	} else {
		in6.sin6_addr = in6addr_any; /* dual stack: IPv4 clients arrive v4-mapped */
		rc = bind(fd, (struct sockaddr *)&in6, sizeof(in6));
	}
	if (rc)
		fail_msg("failed to bind port %d: %s", port, strerror(errno));
	assert_int_equal(listen(fd, 1024), 0);
	/* accept() (and a read of an accepted socket) fails, not waits for ever, when a client failed */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &stuck, sizeof(stuck)), 0);
	if (n_open_listeners < 8)
		open_listeners[n_open_listeners++] = fd;
	return fd;
}

/* A client socket connected to port over the transport, bound to `from` (IPv4) if given. */
static int dial(int port, enum transport t, const char *from)
{
	int v6 = t == T_V6, fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((__u16)port) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons((__u16)port) };

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (from) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		inet_pton(AF_INET, from, &src.sin_addr);
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)))
			return close(fd), -1;
	}
	if (v6) {
		in6.sin6_addr = in6addr_loopback;
		if (connect(fd, (struct sockaddr *)&in6, sizeof(in6)))
			return close(fd), -1;
	} else {
		inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
		if (connect(fd, (struct sockaddr *)&in, sizeof(in)))
			return close(fd), -1;
	}
	return fd;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- one connection ---------------------------------------------------------------------- */

enum delivery { D_ONE, D_BYTES, D_SPLIT, D_MAX, D_THIRDS /* not in the matrix: for the reordering test */ };
static const char *const delivery_names[] = { "one piece", "header in 8 pieces", "random splits" };

/*
 * Most segments a header is sent in. The kernel side holds header bytes back
 * (unacknowledged) until the verdict, so a sender gets no ACK before the
 * header is whole: it must fit the initial congestion window (10 segments),
 * as every real balancer's does (it comes in one write). The README says so.
 */
#define HDR_PIECES 8

/* What a client sends and how. */
struct client {
	pthread_t thread;
	int port;
	enum transport t;
	const char *from;
	enum delivery d;
	int delay_ms;          /* before the first byte */
	const __u8 *data;      /* header + payload */
	size_t len, hdr_len;
	unsigned long long seed;
	int ok;
	int fd;                /* the client's socket once connected, else -1 (set by its thread) */
	int sent;              /* 1 once it has sent everything */
};

static int send_all(int fd, const __u8 *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Send the bytes in the client's pattern. */
static int send_pattern(int fd, struct client *c)
{
	struct prng r = { c->seed };
	size_t at = 0;

	if (c->d == D_ONE)
		return send_all(fd, c->data, c->len);
	if (c->d == D_THIRDS) { /* three header pieces in flight at once, then the payload */
		size_t third = c->hdr_len / 3;

		/* 5 ms apart: separate segments, not merged by autocorking */
		if (send_all(fd, c->data, third) || (sleep_us(5000), send_all(fd, c->data + third, third)) ||
		    (sleep_us(5000), send_all(fd, c->data + 2 * third, c->hdr_len - 2 * third)))
			return -1;
		sleep_us(5000);
		return send_all(fd, c->data + c->hdr_len, c->len - c->hdr_len);
	}
	if (c->d == D_BYTES) {
		for (int i = 1; i <= HDR_PIECES; i++) {
			size_t end = c->hdr_len * (size_t)i / HDR_PIECES;

			if (end > at && send_all(fd, c->data + at, end - at))
				return -1;
			at = end;
			sleep_us(150); /* a segment per piece */
		}
		return send_all(fd, c->data + at, c->len - at);
	}
	while (at < c->len) {
		/* the header in at most 5 pieces, then the payload in random ones */
		size_t n = at < c->hdr_len ? c->hdr_len / 5 + 1 + prng_below(&r, c->hdr_len / 4 + 1)
					   : 1 + prng_below(&r, 70000);

		if (n > c->len - at)
			n = c->len - at;
		if (send_all(fd, c->data + at, n))
			return -1;
		at += n;
		if (prng_below(&r, 3) == 0)
			sleep_us(prng_below(&r, 1000));
	}
	return 0;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char sink[256];
	int fd = dial(c->port, c->t, c->from);

	if (fd < 0)
		return NULL;
	__atomic_store_n(&c->fd, fd, __ATOMIC_RELEASE);
	if (c->delay_ms)
		sleep_us(c->delay_ms * 1000L);
	if (!send_pattern(fd, c) && (__atomic_store_n(&c->sent, 1, __ATOMIC_RELEASE), !shutdown(fd, SHUT_WR))) {
		/* wait for the server to close: it has read everything */
		while (recv(fd, sink, sizeof(sink), 0) > 0)
			;
		c->ok = 1;
	}
	close(fd);
	return NULL;
}

static void client_start(struct client *c)
{
	c->fd = -1;
	c->sent = 0;
	assert_int_equal(pthread_create(&c->thread, NULL, client_main, c), 0);
}

/*
 * Until all the client sent is acknowledged (nothing left in its send
 * queue): the kernel side holds back what it has not judged, so the header
 * was judged. Fails after 5 s.
 */
static void wait_acked(struct client *c, const char *what)
{
	for (int i = 0; i < 5000; i++) {
		int fd = __atomic_load_n(&c->fd, __ATOMIC_ACQUIRE), unacked = -1;

		if (fd >= 0 && __atomic_load_n(&c->sent, __ATOMIC_ACQUIRE) && !ioctl(fd, SIOCOUTQ, &unacked) &&
		    unacked == 0)
			return;
		sleep_us(1000);
	}
	fail_msg("%s: what the client sent was not acknowledged within 5 s", what);
}

static void client_join(struct client *c)
{
	pthread_join(c->thread, NULL);
}

/* Everything until EOF (or 5 s of silence). */
static size_t read_all(int fd, __u8 *buf, size_t cap)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t n = 0;

	while (poll(&p, 1, 5000) == 1) {
		ssize_t r = recv(fd, buf + n, cap - n, 0);

		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap)
			break;
	}
	return n;
}

/* The record fields that must match the header, with a message naming the first difference. */
static void check_info(const char *what, const struct ppbpf_info *got, const struct ppbpf_info *want)
{
#define SAME(f)                                                                                         \
	if ((got->f) != (want->f))                                                                      \
		fail_msg("%s: " #f " is %lld, want %lld", what, (long long)(got->f), (long long)(want->f))
	SAME(state);
	SAME(version);
	SAME(command);
	SAME(family);
	SAME(header_len);
	SAME(src_port);
	SAME(dst_port);
	SAME(tlv_len);
	SAME(tlv_stored);
	SAME(flags & PPBPF_INFO_TLV_TRUNCATED);
#undef SAME
	if (memcmp(got->src_addr, want->src_addr, 16) || memcmp(got->dst_addr, want->dst_addr, 16))
		fail_msg("%s: addresses differ", what);
}

/* How the server side takes the connection. */
enum verify { V_RAW, V_ACCEPT }; /* RAW: accept + ppbpf_wait, stream has the header; ACCEPT: ppbpf_accept */

struct conn_test {
	const struct hcase *hc;
	enum transport t;
	enum delivery d;
	enum verify v;
	int defer, delay_ms, accept_early;
	size_t payload;
	unsigned long long seed;
	int quick; /* no pause before accept(), so no accept-time expectation without defer */
};

static __u8 *send_buf, *recv_buf;
/* Connections whose header the kernel side missed bytes of (reported at the end). */
#define BUF_CAP (2u << 20)

/* One connection end to end; fails the test on any difference. */
static void run_conn(int lfd, int port, const struct conn_test *ct)
{
	struct client c = { .port = port, .t = ct->t, .d = ct->d, .delay_ms = ct->delay_ms, .data = send_buf,
			    .hdr_len = (size_t)ct->hc->len, .seed = ct->seed };
	struct prng r = { ct->seed };
	unsigned char tlvs[PPBPF_TLV_MAX];
	struct ppbpf_info info;
	char what[200];
	size_t n;
	int fd;

	snprintf(what, sizeof(what), "%s, %s, %zu payload bytes, %s%s%s", ct->hc->name, delivery_names[ct->d],
		 ct->payload, ct->v == V_RAW ? "accept+ppbpf_wait" : "ppbpf_accept", ct->defer ? ", defer" : "",
		 ct->delay_ms ? ", header after accept" : "");
	memcpy(send_buf, ct->hc->bytes, (size_t)ct->hc->len);
	prng_fill(&r, send_buf + ct->hc->len, ct->payload);
	c.len = (size_t)ct->hc->len + ct->payload;
	client_start(&c);
	if (ct->v == V_ACCEPT) {
		/* the first bytes after the header come with it into opts.data: none, a few, or all there are */
		static const size_t data_caps[] = { 0, 1, 7, BUF_CAP };
		size_t cap = data_caps[ct->seed % 4];
		struct ppbpf_accept_opts o = { .info = &info, .tlvs = tlvs, .tlvs_cap = sizeof(tlvs),
					       .data = cap ? recv_buf : NULL, .data_cap = cap };

		fd = ppbpf_accept_opts(lfd, NULL, NULL, SOCK_CLOEXEC, &o);
		if (fd < 0) {
			struct ppbpf_accept_stats st;

			ppbpf_accept_stats(&st);
			fail_msg("%s: ppbpf_accept: %s (so far %lu rejected, %lu timed out)", what, strerror(errno),
				 st.rejected, st.timed_out);
		}
		check_info(what, &info, &ct->hc->want);
		if (o.data_len > cap)
			fail_msg("%s: %zu bytes in opts.data, room for %zu", what, o.data_len, cap);
		/* sent with the header in one write: its first segment brings both */
		if (ct->d == D_ONE && !ct->delay_ms && cap && ct->payload && !o.data_len)
			fail_msg("%s: no byte came in opts.data with the header", what);
		n = o.data_len + read_all(fd, recv_buf + o.data_len, BUF_CAP - o.data_len);
		if (n != ct->payload || memcmp(recv_buf, send_buf + ct->hc->len, n))
			fail_msg("%s: the stream after the header is not the payload (%zu of %zu bytes, %zu of them "
				 "with the header)", what, n, ct->payload, o.data_len);
		if (o.tlvs_len != ct->hc->want.tlv_stored || memcmp(tlvs, ct->hc->bytes + ct->hc->tlv_off, o.tlvs_len))
			fail_msg("%s: TLV bytes differ (%zu)", what, o.tlvs_len);
	} else {
		/* Sent at once at connect: the whole header is in the first segment. */
		int at_once = ct->d == D_ONE && !ct->delay_ms, rc;

		if (at_once && !ct->defer && !ct->quick)
			wait_acked(&c, what); /* the header has arrived before accept() */
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		assert_true(fd >= 0);
		rc = ppbpf_get(fd, &info);
		if (rc)
			fail_msg("%s: ppbpf_get: %s", what, strerror(-rc));
		if (ct->accept_early && info.state != PPBPF_STATE_PENDING)
			fail_msg("%s: state %d right after accept(), want pending", what, info.state);
		if (at_once && (ct->defer || !ct->quick) && info.state != PPBPF_STATE_DONE)
			fail_msg("%s: the header had arrived, but accept() returned with state %d", what, info.state);
		rc = ppbpf_wait(fd, 3000, &info);
		/*
		 * ESTALE would mean the kernel side missed header bytes (two segments
		 * reaching the ingress hook out of order). It holds every header
		 * segment back until the verdict, so it must never happen.
		 */
		if (rc == -ESTALE)
			fail_msg("%s: the kernel side missed header bytes (ESTALE)", what);
		if (rc)
			fail_msg("%s: ppbpf_wait: %s", what, strerror(-rc));
		check_info(what, &info, &ct->hc->want);
		rc = ppbpf_get_tlvs(fd, tlvs, sizeof(tlvs));
		if (rc != (int)ct->hc->want.tlv_stored || memcmp(tlvs, ct->hc->bytes + ct->hc->tlv_off, (size_t)rc))
			fail_msg("%s: TLV bytes differ (%d)", what, rc);
		n = read_all(fd, recv_buf, BUF_CAP);
		if (n != c.len || memcmp(recv_buf, send_buf, n))
			fail_msg("%s: the stream is not what was sent (%zu of %zu bytes)", what, n, c.len);
	}
	close(fd);
	client_join(&c);
	if (!c.ok)
		fail_msg("%s: the client failed", what);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* Every header case, delivered in one piece, byte by byte and in random splits, with and without deferred accept. */
static void test_headers_deliveries(void **state)
{
	int port = cfg.port_req;

	(void)state;
	for (int defer = 0; defer < 2; defer++) {
		for (int t = 0; t < T_MAX; t++) {
			int lfd = make_listener(port, (enum transport)t, defer);

			for (int i = 0; i < n_cases; i++)
				for (int d = 0; d < D_MAX; d++) {
					struct conn_test ct = {
						.hc = &cases[i], .t = (enum transport)t, .d = (enum delivery)d,
						.v = (i + d + t) % 2 ? V_RAW : V_ACCEPT, .defer = defer, .payload = 100,
						.seed = (unsigned long long)(i * 31 + d * 7 + t),
					};

					if (cfg.fallback)
						ct.v = V_ACCEPT;
					run_conn(lfd, port, &ct);
				}
			close_listener(lfd);
		}
	}
}

/* The header 200 ms after the handshake: pending after accept(), then done; with deferred accept, accept() waits. */
static void test_header_after_accept(void **state)
{
	int port = cfg.port_req;

	(void)state;
	for (int defer = 0; defer < 2; defer++) {
		int lfd = make_listener(port, T_V4, defer);

		for (int i = 0; i < n_cases; i++) {
			struct conn_test ct = { .hc = &cases[i], .t = T_V4, .d = D_ONE, .v = V_RAW, .defer = defer,
						.delay_ms = 200, .accept_early = !defer, .payload = 10,
						.seed = (unsigned long long)i };
			long t0 = now_ms();

			if (cfg.fallback)
				ct.v = V_ACCEPT, ct.accept_early = 0;
			run_conn(lfd, port, &ct);
			if (now_ms() - t0 < 190)
				fail_msg("%s: finished before the header was sent", cases[i].name);
		}
		close_listener(lfd);
	}
}

/* Payloads of 0 bytes to 1 MiB in random splits, both ways of accepting, with and without deferred accept. */
static void test_payload_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, 1000, 65536, 1u << 20 };
	int port = cfg.port_req;

	(void)state;
	for (int defer = 0; defer < 2; defer++) {
		int lfd = make_listener(port, T_V4, defer);

		for (int i = 0; i < n_cases; i++)
			for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
				for (int v = cfg.fallback; v < 2; v++) {
					struct conn_test ct = { .hc = &cases[i], .t = T_V4, .d = D_SPLIT,
								.v = v ? V_ACCEPT : V_RAW, .defer = defer,
								.payload = sizes[s],
								.seed = (unsigned long long)(i * 1000 + s * 10 + v) };

					run_conn(lfd, port, &ct);
				}
		close_listener(lfd);
	}
}

/*
 * A non-blocking listener: ppbpf_accept passes EAGAIN through when nothing is
 * queued, and returns a queued connection with its header consumed, even
 * when the header comes 50 ms after the handshake (it waits for it).
 */
static void test_nonblocking_listener(void **state)
{
	const struct hcase *hc = find_case("v2 TCP6 ALPN AUTHORITY");
	int lfd = make_listener(cfg.port_req, T_V4, 0);
	struct ppbpf_info info;
	struct ppbpf_accept_opts o = { .info = &info };

	(void)state;
	assert_int_equal(fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK), 0);
	errno = 0;
	assert_int_equal(ppbpf_accept_opts(lfd, NULL, NULL, SOCK_NONBLOCK, &o), -1);
	assert_int_equal(errno, EAGAIN);
	for (int late = 0; late < 2; late++) {
		struct client c = { .port = cfg.port_req, .t = T_V4, .d = D_ONE, .delay_ms = late ? 50 : 0,
				    .data = send_buf, .hdr_len = (size_t)hc->len, .len = (size_t)hc->len + 5 };
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int fd;
		size_t n;

		memcpy(send_buf, hc->bytes, (size_t)hc->len);
		memcpy(send_buf + hc->len, "hello", 5);
		client_start(&c);
		assert_int_equal(poll(&p, 1, 3000), 1); /* a connection is queued */
		fd = ppbpf_accept_opts(lfd, NULL, NULL, SOCK_NONBLOCK, &o);
		if (fd < 0)
			fail_msg("non-blocking ppbpf_accept%s: %s", late ? ", header late" : "", strerror(errno));
		check_info("non-blocking listener", &info, &hc->want);
		assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK); /* the flag asked for is kept */
		n = read_all(fd, recv_buf, BUF_CAP);
		assert_int_equal(n, 5);
		assert_memory_equal(recv_buf, "hello", 5);
		close(fd);
		client_join(&c);
	}
	close_listener(lfd);
}

/* 1,000 connections in a row (cfg.n_in_a_row), each a random case, pattern, payload and transport. */
static void test_thousand_in_a_row(void **state)
{
	int port = cfg.port_req;
	struct prng r = { 20261127 };

	(void)state;
	for (int i = 0; i < cfg.n_in_a_row; i++) {
		enum transport t = (enum transport)prng_below(&r, T_MAX);
		struct conn_test ct = { .hc = &cases[prng_below(&r, (uint32_t)n_cases)], .t = t };
		int fd;

		ct.d = prng_below(&r, 2) ? D_SPLIT : D_ONE;
		ct.v = cfg.fallback || prng_below(&r, 2) ? V_ACCEPT : V_RAW;
		ct.payload = prng_below(&r, 4) ? prng_below(&r, 4096) : prng_below(&r, 65536);
		ct.seed = prng_next(&r);
		ct.defer = (int)prng_below(&r, 2);
		ct.quick = 1;
		fd = make_listener(port, t, ct.defer);
		run_conn(fd, port, &ct);
		close_listener(fd);
	}
}

/* Send bytes from a fresh client and wait until they are in the server's queue. */
static int dial_send(int port, enum transport t, const char *from, const void *data, size_t n)
{
	int fd = dial(port, t, from);

	if (fd < 0 || send_all(fd, data, n))
		fail_msg("failed to connect to port %d and send: %s", port, strerror(errno));
	return fd;
}

/* The peer accept4() reports, as text. */
static void accept_addr(int lfd, int *fd, char *txt, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char a[INET6_ADDRSTRLEN];

	*fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	assert_true(*fd >= 0);
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(txt, cap, "%s:%u", a, ntohs(in->sin_port));
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(txt, cap, "[%s]:%u", a, ntohs(in6->sin6_port));
	}
}

/* accept() and getpeername() of one connection on the rewrite port must say `want` ("real" for no rewrite). */
static void check_rewrite(enum transport t, int defer, const char *hname, const char *want)
{
	const struct hcase *hc = find_case(hname);
	int lfd = make_listener(cfg.port_rw, t, defer), cfd, fd;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char got[80], real[80], a[INET6_ADDRSTRLEN];
	struct sockaddr_storage me;
	socklen_t mlen = sizeof(me);

	cfd = dial_send(cfg.port_rw, t, NULL, hc->bytes, (size_t)hc->len);
	getsockname(cfd, (struct sockaddr *)&me, &mlen);
	if (me.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&me)->sin_addr, a, sizeof(a));
		snprintf(real, sizeof(real), t == T_V4 ? "%s:%u" : "[::ffff:%s]:%u", a,
			 ntohs(((struct sockaddr_in *)&me)->sin_port));
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&me)->sin6_addr, a, sizeof(a));
		snprintf(real, sizeof(real), "[%s]:%u", a, ntohs(((struct sockaddr_in6 *)&me)->sin6_port));
	}
	if (!defer)
		sleep_us(30000); /* the header has arrived before accept() */
	accept_addr(lfd, &fd, got, sizeof(got));
	if (strcmp(got, strcmp(want, "real") ? want : real))
		fail_msg("%s, transport %d%s: accept() says %s, want %s", hname, t, defer ? ", defer" : "", got,
			 strcmp(want, "real") ? want : real);
	assert_int_equal(getpeername(fd, (struct sockaddr *)&ss, &len), 0);
	close(fd);
	close(cfd);
	close_listener(lfd);
}

/* --rewrite-peer: accept() and getpeername() give the original source, in the socket's family where possible. */
static void test_rewrite_peer(void **state)
{
	(void)state;
	for (int defer = 0; defer < 2; defer++) {
		check_rewrite(T_V4, defer, "v1 TCP4", "192.0.2.1:51000");
		check_rewrite(T_V4, defer, "v2 TCP4", "192.0.2.1:51000");
		check_rewrite(T_V4_ON_V6, defer, "v2 TCP4", "[::ffff:192.0.2.1]:51000");
		check_rewrite(T_V6, defer, "v2 TCP6 ALPN AUTHORITY", "[2001:db8::1]:1234");
		check_rewrite(T_V4_ON_V6, defer, "v1 TCP6", "[2001:db8::1]:1234");
		check_rewrite(T_V4, defer, "v1 TCP6", "real"); /* IPv6 cannot be told to an IPv4 socket */
		check_rewrite(T_V4, defer, "v2 LOCAL", "real");
		check_rewrite(T_V4, defer, "v1 UNKNOWN", "real");
		check_rewrite(T_V4, defer, "v2 UDP4", "real"); /* a UDP source is no TCP peer */
	}
}

/* Without --rewrite-peer nothing is rewritten, but the record is there; and ppbpf_getpeername gives the original. */
static void test_no_rewrite_without_flag(void **state)
{
	const struct hcase *hc = find_case("v2 TCP4");
	int lfd = make_listener(cfg.port_req, T_V4, 1), cfd, fd;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char got[80];

	(void)state;
	cfd = dial_send(cfg.port_req, T_V4, NULL, hc->bytes, (size_t)hc->len);
	accept_addr(lfd, &fd, got, sizeof(got));
	if (strncmp(got, "127.0.0.1:", 10))
		fail_msg("accept() without --rewrite-peer says %s", got);
	assert_int_equal(ppbpf_getpeername(fd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(sin.sin_family, AF_INET);
	assert_int_equal(ntohs(sin.sin_port), 51000);
	assert_int_equal(sin.sin_addr.s_addr, htonl(0xC0000201));
	close(fd);
	close(cfd);
	close_listener(lfd);
}

/* A peer outside --trust is not tracked: nothing honoured, the stream untouched. */
static void test_untrusted_peer(void **state)
{
	const struct hcase *hc = find_case("v2 TCP4");
	int lfd = make_listener(cfg.port_trust2, T_V4, 0);
	struct ppbpf_info info;

	(void)state;
	for (int trusted = 0; trusted < 2; trusted++) {
		int cfd = dial_send(cfg.port_trust2, T_V4, trusted ? "127.0.0.2" : "127.0.0.1", hc->bytes,
				    (size_t)hc->len);
		int fd, rc;
		size_t n;

		shutdown(cfd, SHUT_WR);
		sleep_us(30000);
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		rc = ppbpf_get(fd, &info);
		if (trusted) {
			assert_int_equal(rc, 0);
			assert_int_equal(info.state, PPBPF_STATE_DONE);
		} else {
			assert_int_equal(rc, -ENODATA);
		}
		n = read_all(fd, recv_buf, BUF_CAP);
		assert_int_equal(n, hc->len);
		assert_memory_equal(recv_buf, hc->bytes, n);
		close(fd);
		close(cfd);
	}
	close_listener(lfd);
}

/* A port without policy: not tracked; ppbpf_accept hands the connection over untouched. */
static void test_untracked_port(void **state)
{
	const struct hcase *hc = find_case("v1 TCP4");
	int lfd = make_listener(cfg.port_none, T_V4, 0), cfd, fd;
	struct ppbpf_info info;
	struct ppbpf_accept_opts o = { .info = &info };
	size_t n;

	(void)state;
	cfd = dial_send(cfg.port_none, T_V4, NULL, hc->bytes, (size_t)hc->len);
	shutdown(cfd, SHUT_WR);
	fd = ppbpf_accept_opts(lfd, NULL, NULL, 0, &o);
	assert_true(fd >= 0);
	assert_int_equal(info.state, PPBPF_STATE_NONE);
	assert_int_equal(ppbpf_get(fd, &info), -ENODATA);
	n = read_all(fd, recv_buf, BUF_CAP);
	assert_int_equal(n, hc->len);
	assert_memory_equal(recv_buf, hc->bytes, n);
	close(fd);
	close(cfd);
	close_listener(lfd);
}

/* --optional: no header is a plain connection with the real peer and an intact stream; a header still counts. */
static void test_optional_port(void **state)
{
	static const char plain[] = "GET / HTTP/1.0\r\n\r\n";
	const struct hcase *hc = find_case("v2 TCP4");
	int lfd = make_listener(cfg.port_opt, T_V4, 0), cfd, fd;
	struct sockaddr_in orig;
	socklen_t olen = sizeof(orig);
	struct ppbpf_info info;
	struct ppbpf_accept_opts o = { .info = &info };
	size_t n;

	(void)state;
	cfd = dial_send(cfg.port_opt, T_V4, NULL, plain, sizeof(plain) - 1);
	shutdown(cfd, SHUT_WR);
	fd = ppbpf_accept_opts(lfd, (struct sockaddr *)&orig, &olen, 0, &o);
	assert_true(fd >= 0);
	assert_int_equal(info.state, PPBPF_STATE_PLAIN);
	assert_int_equal(orig.sin_addr.s_addr, htonl(0x7f000001));
	n = read_all(fd, recv_buf, BUF_CAP);
	assert_int_equal(n, sizeof(plain) - 1);
	assert_memory_equal(recv_buf, plain, n);
	close(fd);
	close(cfd);
	cfd = dial_send(cfg.port_opt, T_V4, NULL, hc->bytes, (size_t)hc->len);
	fd = ppbpf_accept_opts(lfd, (struct sockaddr *)&orig, &olen, 0, &o);
	assert_int_equal(info.state, PPBPF_STATE_DONE);
	assert_int_equal(orig.sin_addr.s_addr, htonl(0xC0000201));
	close(fd);
	close(cfd);
	close_listener(lfd);
}

/* Invalid headers: recorded as errors with their reason; ppbpf_accept never returns them. */
static void test_invalid_headers(void **state)
{
	static const struct {
		const char *data;
		int error;
	} bad[] = {
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", PPBPF_E_NOT_PROXY },
		{ "PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n", PPBPF_E_V1_PORT },
		{ "PROXY TCP4 192.0.2.01 198.51.100.2 1 443\r\n", PPBPF_E_V1_ADDR },
		{ "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04" "abcd", PPBPF_E_V2_ADDR_LEN },
	};
	const struct hcase *good = find_case("v2 TCP6 ALPN AUTHORITY");
	int lfd = make_listener(cfg.port_req, T_V4, 0);
	char sink[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = i == 3 ? 20 : strlen(bad[i].data);
		int cfd = dial_send(cfg.port_req, T_V4, NULL, bad[i].data, len), fd;
		struct ppbpf_info info;

		if (!cfg.fallback) { /* the kernel's record, taken with a plain accept */
			sleep_us(30000);
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			assert_int_equal(ppbpf_get(fd, &info), 0);
			assert_int_equal(info.state, PPBPF_STATE_ERROR);
			assert_int_equal(info.error, bad[i].error);
			close(fd);
			close(cfd);
			cfd = dial_send(cfg.port_req, T_V4, NULL, bad[i].data, len);
		}
		{ /* ppbpf_accept closes it and returns the next, good connection */
			int gfd = dial_send(cfg.port_req, T_V4, NULL, good->bytes, (size_t)good->len);
			struct ppbpf_accept_opts o = { .info = &info };

			sleep_us(20000);
			fd = ppbpf_accept_opts(lfd, NULL, NULL, 0, &o);
			assert_true(fd >= 0);
			assert_int_equal(info.state, PPBPF_STATE_DONE);
			assert_int_equal(info.family, PPBPF_FAM_TCP6);
			/* the bad one was closed unread: EOF, or a reset since its data was never read */
			{
				ssize_t r = recv(cfd, sink, sizeof(sink), 0);

				if (r != 0 && !(r < 0 && errno == ECONNRESET))
					fail_msg("the invalid connection was not closed: recv %zd (%s)", r,
						 strerror(errno));
			}
			close(fd);
			close(gfd);
			close(cfd);
		}
	}
	close_listener(lfd);
}

/* A process running as nobody queries its own socket with no privileges and no map fds. */
static void test_unprivileged_query(void **state)
{
	const struct hcase *hc = find_case("v2 TCP4 every TLV + CRC32C");
	int ready[2], result[2];
	struct ppbpf_info info;
	pid_t pid;
	char c;

	(void)state;
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(result), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* stays in this cgroup: the kernel side applies */
		struct ppbpf_info got = {};
		gid_t none = 65534;
		int lfd, fd;

		if (setgroups(1, &none) || setgid(65534) || setuid(65534) || getuid() != 65534)
			_exit(3);
		lfd = make_listener(cfg.port_req, T_V4, 0);
		if (write(ready[1], "r", 1) != 1)
			_exit(4);
		fd = accept4(lfd, NULL, NULL, 0);
		if (fd < 0 || ppbpf_wait(fd, 3000, &got))
			_exit(5);
		_exit(write(result[1], &got, sizeof(got)) == sizeof(got) ? 0 : 6);
	}
	close(ready[1]); /* if the child dies, the reads below see EOF instead of blocking */
	close(result[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	{
		int cfd = dial_send(cfg.port_req, T_V4, NULL, hc->bytes, (size_t)hc->len);
		int status;

		assert_int_equal(read(result[0], &info, sizeof(info)), sizeof(info));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status)); /* a child killed by a signal has WEXITSTATUS 0 too */
		assert_int_equal(WEXITSTATUS(status), 0);
		close(cfd);
	}
	check_info("query as uid nobody", &info, &hc->want);
	close(ready[0]);
	close(result[0]);
}

/* The dropper's globals (tests/bpf/drop_once.bpf.c), in its .bss map. */
struct dropper {
	__u32 port, nth, seen, dropped, acks;
};

/* The .bss map of the dropper kernel.sh attached before ppbpf, or -1. */
static int dropper_map(void)
{
	const char *dir = getenv("PPBPF_TEST_DROPPER");
	char path[512];
	DIR *d;
	struct dirent *e;
	int fd = -1;

	if (!dir || !(d = opendir(dir)))
		return -1;
	while ((e = readdir(d)))
		if (strstr(e->d_name, "bss")) { /* bpftool pins it as drop_onc_bss */
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			fd = bpf_obj_get(path);
		}
	closedir(d);
	return fd;
}

/*
 * A header split over segments, one of them lost on the way in and resent.
 * The kernel side holds back every header segment until the verdict, the
 * ones after the gap included (unacknowledged, so TCP resends them): the
 * record completes in the kernel, with nothing for userspace to redo, and
 * the stream arrives whole. The loss comes from a test XDP program on the
 * loopback of the network namespace kernel.sh runs this in.
 */
static void test_reordered_segments(void **state)
{
	const struct hcase *hc = find_case("v2 TCP4 every TLV + CRC32C");
	int map = dropper_map(), lfd;
	size_t payload = 64;
	__u32 zero = 0;

	(void)state;
	if (map < 0)
		fail_msg("no dropper: kernel.sh sets PPBPF_TEST_DROPPER to its pin folder");
	memcpy(send_buf, hc->bytes, (size_t)hc->len);
	memset(send_buf + hc->len, 'p', payload);
	lfd = make_listener(cfg.port_req, T_V4, 0);
	for (int attempt = 0; attempt < 10; attempt++) {
		struct dropper dr = { .port = (__u32)cfg.port_req, .nth = 2 };
		struct client cl = { .port = cfg.port_req, .t = T_V4, .d = D_THIRDS, .data = send_buf,
				     .hdr_len = (size_t)hc->len, .len = (size_t)hc->len + payload };
		struct ppbpf_accept_stats before, after;
		unsigned char tlvs[PPBPF_TLV_MAX];
		struct ppbpf_info info;
		struct ppbpf_accept_opts o = { .info = &info, .tlvs = tlvs, .tlvs_cap = sizeof(tlvs) };
		int fd, rc;
		size_t n;

		assert_int_equal(bpf_map_update_elem(map, &zero, &dr, BPF_ANY), 0);
		ppbpf_accept_stats(&before);
		client_start(&cl);
		if (attempt % 2 == 0) { /* accept() and the record */
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			assert_true(fd >= 0);
			rc = ppbpf_wait(fd, 5000, &info);
			if (rc)
				fail_msg("header behind a lost segment: ppbpf_wait: %s", strerror(-rc));
			check_info("header behind a lost segment", &info, &hc->want);
			n = read_all(fd, recv_buf, BUF_CAP);
			assert_int_equal(n, cl.len);
			assert_memory_equal(recv_buf, send_buf, n);
		} else { /* ppbpf_accept: answered by the kernel record, never by the userspace parser */
			fd = ppbpf_accept_opts(lfd, NULL, NULL, SOCK_CLOEXEC, &o);
			ppbpf_accept_stats(&after);
			assert_true(fd >= 0);
			check_info("header behind a lost segment, ppbpf_accept", &info, &hc->want);
			assert_int_equal(after.kernel, before.kernel + 1);
			assert_int_equal(after.userspace, before.userspace);
			assert_int_equal(o.tlvs_len, hc->want.tlv_stored);
			assert_memory_equal(tlvs, hc->bytes + hc->tlv_off, o.tlvs_len);
			n = read_all(fd, recv_buf, BUF_CAP);
			assert_int_equal(n, payload);
			assert_memory_equal(recv_buf, send_buf + hc->len, n);
		}
		close(fd);
		client_join(&cl);
		assert_int_equal(bpf_map_lookup_elem(map, &zero, &dr), 0);
		assert_int_equal(dr.dropped, 1);
	}
	close_listener(lfd);
	close(map);
}

/*
 * Run a shell pipeline (bash, with pipefail: every stage must succeed) and
 * return its output, which must be one number and nothing else (a "null"
 * from jq is no 0).
 */
static long shell_number(const char *fmt, ...)
{
	char cmd[1024], line[64] = "", *end;
	va_list ap;
	FILE *f;
	long n;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (setenv("PPBPF_TEST_CMD", cmd, 1))
		fail_msg("setenv: %s", strerror(errno));
	f = popen("exec bash -o pipefail -c \"$PPBPF_TEST_CMD\"", "r");
	if (!f)
		fail_msg("popen: %s", strerror(errno));
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	while (fgetc(f) != EOF) /* the rest, if any: then it is not one number */
		line[0] = 'x';
	status = pclose(f);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("exit status %d from: %s", status, cmd);
	line[strcspn(line, "\n")] = 0;
	errno = 0;
	n = strtol(line, &end, 10);
	if (end == line || errno || *end)
		fail_msg("not a number (\"%s\") from: %s", line, cmd);
	return n;
}

/* With nothing attached, the query says so (ENOPROTOOPT), which is what sends ppbpf_accept to userspace. */
static void test_not_attached(void **state)
{
	const struct hcase *hc = find_case("v1 TCP4");
	int lfd = make_listener(cfg.port_req, T_V4, 0), cfd, fd;
	struct ppbpf_info info;
	struct ppbpf_accept_stats before, after;

	(void)state;
	cfd = dial_send(cfg.port_req, T_V4, NULL, hc->bytes, (size_t)hc->len);
	fd = accept4(lfd, NULL, NULL, 0);
	assert_int_equal(ppbpf_get(fd, &info), -ENOPROTOOPT);
	close(fd);
	close(cfd);
	cfd = dial_send(cfg.port_req, T_V4, NULL, hc->bytes, (size_t)hc->len);
	ppbpf_accept_stats(&before);
	fd = ppbpf_accept(lfd, NULL, NULL, 0);
	ppbpf_accept_stats(&after);
	assert_true(fd >= 0);
	assert_int_equal(after.userspace, before.userspace + 1);
	close(fd);
	close(cfd);
	close_listener(lfd);
}

/*
 * Live connections show in `ppbpf list --json` and `bpftool map dump` (held on
 * a dual-stack listener: their own addresses list as IPv4); 10,000 closed ones
 * (cfg.n_closed) leave no entry.
 */
static void test_table_and_no_leak(void **state)
{
	const struct hcase *hc = find_case("v2 TCP4 every TLV + CRC32C");
	int lfd = make_listener(cfg.port_req, T_V4_ON_V6, 0), held[20], clients[20];
	long n, tracked;

	(void)state;
	for (int i = 0; i < 20; i++) {
		clients[i] = dial_send(cfg.port_req, T_V4_ON_V6, NULL, hc->bytes, (size_t)hc->len);
		held[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	}
	sleep_us(50000);
	n = shell_number("%s list --json --pin-dir %s | jq '[.[] | select(.state == \"done\" and "
			 ".src == \"192.0.2.1:51000\" and .dst == \"198.51.100.2:443\" and .tlv_count == 10 and "
			 ".local == \"127.0.0.1:%d\" and (.peer | startswith(\"127.0.0.1:\")))] | length'",
			 cfg.cli, cfg.pin_dir, cfg.port_req);
	assert_int_equal(n, 20);
	n = shell_number("bpftool -j map dump pinned %s/conns | jq '[.[] | select(.formatted.value.src.port == "
			 "51000 and .formatted.value.state == 2)] | length'", cfg.pin_dir);
	assert_int_equal(n, 20);
	for (int i = 0; i < 20; i++)
		close(held[i]), close(clients[i]);
	tracked = shell_number("%s status --json --pin-dir %s | jq '.counters.tracked'", cfg.cli, cfg.pin_dir);
	for (int i = 0; i < cfg.n_closed; i++) {
		int cfd = dial_send(cfg.port_req, T_V4, NULL, hc->bytes, (size_t)hc->len);
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		assert_true(fd >= 0);
		close(fd); /* the server closes first: its side goes through TIME_WAIT, the client's port is free */
		close(cfd);
	}
	close_listener(lfd);
	for (int tries = 0; tries < 50; tries++) {
		n = shell_number("%s status --json --pin-dir %s | jq '.connections + .pending'", cfg.cli, cfg.pin_dir);
		if (!n)
			break;
		sleep_us(100000);
	}
	assert_int_equal(n, 0);
	n = shell_number("%s status --json --pin-dir %s | jq '.counters.closed - .counters.tracked'", cfg.cli,
			 cfg.pin_dir);
	assert_int_equal(n, 0); /* every tracked connection was seen closing */
	n = shell_number("%s status --json --pin-dir %s | jq '.counters.tracked'", cfg.cli, cfg.pin_dir);
	assert_int_equal(n - tracked, cfg.n_closed); /* and each of them was tracked */
}

int main(int argc, char **argv)
{
	const struct CMUnitTest kernel_tests[] = {
		cmocka_unit_test_teardown(test_headers_deliveries, teardown_listeners),
		cmocka_unit_test_teardown(test_header_after_accept, teardown_listeners),
		cmocka_unit_test_teardown(test_payload_sizes, teardown_listeners),
		cmocka_unit_test_teardown(test_thousand_in_a_row, teardown_listeners),
		cmocka_unit_test_teardown(test_nonblocking_listener, teardown_listeners),
		cmocka_unit_test_teardown(test_invalid_headers, teardown_listeners),
		cmocka_unit_test_teardown(test_rewrite_peer, teardown_listeners),
		cmocka_unit_test_teardown(test_no_rewrite_without_flag, teardown_listeners),
		cmocka_unit_test_teardown(test_untrusted_peer, teardown_listeners),
		cmocka_unit_test_teardown(test_untracked_port, teardown_listeners),
		cmocka_unit_test_teardown(test_optional_port, teardown_listeners),
		cmocka_unit_test_teardown(test_unprivileged_query, teardown_listeners),
		cmocka_unit_test_teardown(test_table_and_no_leak, teardown_listeners),
	};
	/* Where nothing is attached, ppbpf_accept must give the same answers on the same inputs. */
	const struct CMUnitTest fallback_tests[] = {
		cmocka_unit_test_teardown(test_headers_deliveries, teardown_listeners),
		cmocka_unit_test_teardown(test_header_after_accept, teardown_listeners),
		cmocka_unit_test_teardown(test_payload_sizes, teardown_listeners),
		cmocka_unit_test_teardown(test_thousand_in_a_row, teardown_listeners),
		cmocka_unit_test_teardown(test_nonblocking_listener, teardown_listeners),
		cmocka_unit_test_teardown(test_invalid_headers, teardown_listeners),
		cmocka_unit_test_teardown(test_not_attached, teardown_listeners),
	};
	/* In a network namespace whose loopback loses a chosen segment (kernel.sh). */
	const struct CMUnitTest reorder_tests[] = {
		cmocka_unit_test_teardown(test_reordered_segments, teardown_listeners),
	};
	const struct case_group groups[] = {
		CASE_GROUP("kernel", "receive path, kernel", kernel_tests),
		CASE_GROUP("fallback", "receive path, userspace fallback", fallback_tests),
		CASE_GROUP("reorder", "receive path, reordered segments", reorder_tests),
	};
	const struct case_group *group;
	int status;

	group = PICK_GROUP("recv_test", groups, argc, argv, argc == 9 || argc == 11,
			   "kernel|fallback|reorder PORT_REQ PORT_RW PORT_OPT PORT_NONE PORT_TRUST2 PIN_DIR CLI "
			   "[N_IN_A_ROW (1000) N_CLOSED (10000)]",
			   &status);
	if (!group)
		return status;
	cfg.fallback = !strcmp(argv[1], "fallback");
	cfg.port_req = atoi(argv[2]);
	cfg.port_rw = atoi(argv[3]);
	cfg.port_opt = atoi(argv[4]);
	cfg.port_none = atoi(argv[5]);
	cfg.port_trust2 = atoi(argv[6]);
	cfg.pin_dir = argv[7];
	cfg.cli = argv[8];
	cfg.n_in_a_row = argc > 9 ? atoi(argv[9]) : 1000;
	cfg.n_closed = argc > 10 ? atoi(argv[10]) : 10000;
	if (cfg.n_in_a_row < 1 || cfg.n_closed < 1) {
		fprintf(stderr, "recv_test: N_IN_A_ROW and N_CLOSED must be positive numbers\n");
		return 2;
	}
	send_buf = malloc(BUF_CAP);
	recv_buf = malloc(BUF_CAP);
	if (!send_buf || !recv_buf)
		return 1;
	build_cases();
	/*
	 * The userspace fallback is off unless told whom to trust (accept_test
	 * checks that default): here it is opted in for the loopback clients,
	 * for every ppbpf_accept call, through the environment.
	 */
	if (cfg.fallback && setenv(PPBPF_FALLBACK_TRUST_ENV, "127.0.0.0/8,::1", 1))
		return 1;
	return run_case_group("recv_test", group);
}
