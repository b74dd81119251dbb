// SPDX-License-Identifier: MIT
/*
 * How the kernel side takes in a header's segments, on real sockets: loss,
 * deferred accept, stale and planted listener state, IPv6 extension headers,
 * the connection table, and a policy change while a header is pending. Run
 * by segments.sh inside an attached test cgroup, one mode per case:
 *
 *   loss PORT              a 2,000-byte header in 536-byte segments, one lost
 *   deferfull PORT         deferred accept, a split header completing while the
 *                          accept queue is full
 *   abandon PORT FROM      deferred accept, a split header abandoned, then a new
 *                          connection from the same source port FROM
 *   plant PORT N           N segments with header bytes and no handshake, from a
 *                          trusted source (raw socket): they must leave nothing
 *   ext6 PORT              IPv6 clients sending destination and hop-by-hop options
 *   slots REJ_PORT OK_PORT N  N untrusted connections held open on a rejecting
 *                          port must not take table slots from trusted ones
 *   revoke PORT plain|reject  a header pending when its peer stops being trusted
 *   race PORT N            the same segment of a pending header on two CPUs at once
 *   orphan PORT            a header pending when the server closes: the orphan is reset
 *   closerace PORT N       a pending header's next piece on one CPU as the socket closes on the other
 *   localuid PORT UID done|plain DEFER  a client of this host, as UID, on a --local-uid
 *                          port (DEFER: the listener's TCP_DEFER_ACCEPT seconds)
 *
 * Headers carry documentation addresses; traffic stays on loopback.
 */
#include <dirent.h>
#include <sched.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <ppbpf/ppbpf.h>
#include "testlib.h"

/* The source every test header claims. */
#define ORIG_ADDR "203.0.113.7"
#define ORIG_PORT 40000
/* How long a header may take to be judged where nothing is lost. */
#define JUDGE_MS 3000
/* No blocking call waits longer. */
#define STUCK_MS 20000

/* A v2 TCP4 header claiming ORIG_ADDR:ORIG_PORT, with a NOOP TLV of `pad` bytes. Returns its length. */
static int test_header(__u8 *out, size_t cap, unsigned int pad)
{
	static __u8 zeros[4096];
	struct ppbpf_tlv noop = { PPBPF_TLV_NOOP, (__u16)pad, zeros };
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
				 .src_port = ORIG_PORT, .dst_port = 443, .tlvs = &noop, .n_tlvs = pad ? 1 : 0 };

	inet_pton(AF_INET, ORIG_ADDR, b.src_addr);
	inet_pton(AF_INET, "198.51.100.2", b.dst_addr);
	return ppbpf_build(&b, out, cap);
}

/* A listener on addr:port; backlog and TCP_DEFER_ACCEPT seconds (0: none). */
static int listener(const char *addr, int port, int backlog, int defer_s)
{
	struct sockaddr_storage ss;
	socklen_t len = t_sockaddr(&ss, addr, port);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (defer_s)
		setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, backlog)) {
		perror("listener");
		exit(2);
	}
	set_timeout(fd, STUCK_MS);
	return fd;
}

/* A client socket bound to from:from_port (0: any), not yet connected. */
static int client_socket(const char *from, int from_port)
{
	struct sockaddr_storage ss;
	socklen_t len = t_sockaddr(&ss, from, from_port);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len)) {
		perror("bind");
		exit(2);
	}
	set_timeout(fd, STUCK_MS);
	return fd;
}

static int connect_to(int fd, const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = t_sockaddr(&ss, addr, port);

	return connect(fd, (struct sockaddr *)&ss, len) ? -errno : 0;
}

/* Close with an RST (SO_LINGER 0). */
static void close_reset(int fd)
{
	struct linger l = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/*
 * The record, once the kernel has judged the header (state other than
 * PENDING), asked every 2 ms for at most ms. 0, -ETIMEDOUT, or -errno.
 */
static int wait_judged(int fd, int ms, struct ppbpf_info *info)
{
	double end = now_s() + ms / 1000.0;

	for (;;) {
		socklen_t len = sizeof(*info);
		int rc = getsockopt(fd, SOL_PPBPF, PPBPF_INFO, info, &len) ? -errno : 0;

		if (rc && rc != -EAGAIN)
			return rc;
		if (!rc && info->state != PPBPF_STATE_PENDING)
			return 0;
		if (now_s() > end)
			return -ETIMEDOUT;
		sleep_ms(2);
	}
}

/* The record says the test header was accepted, its source ORIG_ADDR:ORIG_PORT. */
static void check_done(const char *what, int rc, const struct ppbpf_info *info, int header_len)
{
	struct in_addr want;

	inet_pton(AF_INET, ORIG_ADDR, &want);
	CHECK(rc == 0, "%s: the header was not judged: %s", what, strerror(-rc));
	if (rc)
		return;
	CHECK(info->state == PPBPF_STATE_DONE, "%s: state %u (error %d), not done", what, info->state, info->error);
	CHECK(info->family == PPBPF_FAM_TCP4 && !memcmp(info->src_addr, &want, 4) && info->src_port == ORIG_PORT,
	      "%s: the record's source is not " ORIG_ADDR, what);
	CHECK((int)info->header_len == header_len, "%s: header_len %u, want %d", what, info->header_len, header_len);
}

/* The server reads exactly `want` (the header and what follows it). */
static void check_stream(const char *what, int fd, const __u8 *want, size_t n)
{
	static __u8 got[8192];
	size_t have = recv_all(fd, got, n);

	CHECK(have == n && !memcmp(got, want, n), "%s: the stream arrived changed (%zu of %zu bytes)", what, have, n);
}

/* ---- loss -------------------------------------------------------------------------------- */

/* The dropper's globals (tests/bpf/drop_once.bpf.c), in its .bss map. */
struct dropper {
	__u32 port, nth, seen, dropped, acks;
};

/* The .bss map of the dropper segments.sh attached to this namespace's loopback, or -1. */
static int dropper_map(void)
{
	const char *dir = getenv("PPBPF_TEST_DROPPER");
	struct dirent *e;
	char path[512];
	int fd = -1;
	DIR *d;

	if (!dir || !(d = opendir(dir)))
		return -1;
	while ((e = readdir(d)))
		if (strstr(e->d_name, "bss")) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			fd = bpf_obj_get(path);
		}
	closedir(d);
	return fd;
}

/* A connection from 127.0.0.1 whose segments carry at most 536 bytes (TCP_MAXSEG). */
static int small_mss_client(int port, const char *what)
{
	int mss = 536, cfd = client_socket("127.0.0.1", 0);

	setsockopt(cfd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss));
	CHECK(connect_to(cfd, "127.0.0.1", port) == 0, "%s: connect", what);
	return cfd;
}

/* Arm the dropper: data segment nth to `port` is lost once. */
static void drop_nth(int map, int port, int nth)
{
	struct dropper dr = { .port = (__u32)port, .nth = (__u32)nth };
	__u32 zero = 0;

	CHECK(bpf_map_update_elem(map, &zero, &dr, BPF_ANY) == 0, "cannot set the dropper");
}

/* Did the dropper drop? */
static bool dropped(int map)
{
	struct dropper dr = {};
	__u32 zero = 0;

	bpf_map_lookup_elem(map, &zero, &dr);
	return dr.dropped;
}

/*
 * A 2,000-byte header and `data` bytes after it in one write, as a balancer
 * sends them, leaving as 536-byte segments (TCP_MAXSEG: no segment can carry
 * two pieces, so a resend cannot merge them; segments.sh turns segmentation
 * offload off on the namespace's loopback), with data segment `nth` lost
 * once on the way in. The kernel must judge the header and the stream must
 * arrive whole, within a few round trips of the loss being repaired.
 */
static void loss_once(int lfd, int port, int nth, size_t data, int map)
{
	static __u8 msg[8192];
	int hl = test_header(msg, sizeof(msg), 1960), cfd, sfd, rc;
	size_t n = (size_t)hl + data;
	struct ppbpf_info info;
	char what[96];

	snprintf(what, sizeof(what), "loss of data segment %d of a header and %zu bytes", nth, data);
	memset(msg + hl, 'd', data);
	drop_nth(map, port, nth);
	cfd = small_mss_client(port, what);
	CHECK(send_all(cfd, msg, n) == 0, "%s: send", what);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(sfd >= 0, "%s: accept: %s", what, strerror(errno));
	if (sfd >= 0) {
		rc = wait_judged(sfd, 8000, &info);
		check_done(what, rc, &info, hl);
		check_stream(what, sfd, msg, n);
		close(sfd);
	}
	CHECK(dropped(map), "%s: nothing was dropped", what);
	close(cfd);
}

/*
 * The limit of holding the head back: a lost segment with just one segment
 * after it. That one passes, and its selective ACK sends the sender into
 * recovery, which lets it resend one segment: its first, held back again
 * while the header is incomplete. No ACK comes back, so it never gets to
 * resend the lost one. The header is never judged (with `ppbpf run`, the
 * port's timeout resets it) and, above all, not one byte reaches the
 * application meanwhile. Two segments after the gap, or none (the sender's
 * tail loss probe resends the last one), and it is repaired.
 */
static void one_after_gap(int lfd, int port, int map)
{
	static __u8 msg[4096];
	int hl = test_header(msg, sizeof(msg), 1960), cfd, sfd, rc;
	const char *what = "loss of a segment with one segment after it";
	size_t n = (size_t)hl + 100;
	struct ppbpf_info info;
	char b[64];

	memset(msg + hl, 'd', 100);
	drop_nth(map, port, 3);
	cfd = small_mss_client(port, what);
	CHECK(send_all(cfd, msg, n) == 0, "%s: send", what);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(sfd >= 0, "%s: accept: %s", what, strerror(errno));
	if (sfd >= 0) {
		rc = wait_judged(sfd, 1500, &info);
		if (rc == 0) { /* the sender found its way after all: then it must be right */
			check_done(what, rc, &info, hl);
			check_stream(what, sfd, msg, n);
			printf("loss: %s: repaired\n", what);
		} else {
			CHECK(rc == -ETIMEDOUT, "%s: %s", what, strerror(-rc));
			CHECK(recv(sfd, b, sizeof(b), MSG_DONTWAIT) < 0 && errno == EAGAIN,
			      "%s: the application could read bytes of a header not judged", what);
			printf("loss: %s: not judged in 1.5 s, and nothing readable (ppbpf run's timeout resets it)\n",
			       what);
		}
		close(sfd);
	}
	CHECK(dropped(map), "%s: nothing was dropped", what);
	close_reset(cfd);
}

static void run_loss(int port)
{
	int map = dropper_map(), lfd = listener("127.0.0.1", port, 16, 0);

	CHECK(map >= 0, "no dropper: segments.sh sets PPBPF_TEST_DROPPER to its pin folder");
	if (map < 0)
		return;
	for (int nth = 1; nth <= 4; nth++) /* each segment of the header, with data after it */
		loss_once(lfd, port, nth, 3000, map);
	loss_once(lfd, port, 4, 0, map); /* the header's last segment, nothing after it */
	one_after_gap(lfd, port, map);
	printf("loss: a 2,000-byte header in 536-byte segments, each one lost once in turn, and its last with "
	       "nothing after: judged, stream whole\n");
	close(lfd);
	close(map);
}

/* ---- deferred accept --------------------------------------------------------------------- */

/*
 * A split header that completes at a deferred listener whose accept queue is
 * full: the kernel cannot make the child, and drops the segment. Once the
 * queue has room, the client's resend must get through.
 */
static void run_deferfull(int port)
{
	static __u8 hdr[256];
	int hl = test_header(hdr, sizeof(hdr), 40), lfd = listener("127.0.0.1", port, 0, 30);
	int first = client_socket("127.0.0.1", 0), second = client_socket("127.0.0.1", 0), s1, s2, rc;
	struct ppbpf_info info;
	double t0;

	/*
	 * The second connects first: deferred accept leaves its handshake waiting
	 * for data. The first then fills the queue (backlog 0: one child is full).
	 */
	CHECK(connect_to(second, "127.0.0.1", port) == 0, "deferfull: the second connects");
	CHECK(connect_to(first, "127.0.0.1", port) == 0 && send_all(first, hdr, (size_t)hl) == 0, "deferfull: first");
	sleep_ms(200);
	CHECK(send_all(second, hdr, (size_t)hl / 2) == 0, "deferfull: the second's first piece");
	sleep_ms(50);
	CHECK(send_all(second, hdr + hl / 2, (size_t)(hl - hl / 2)) == 0, "deferfull: the second's second piece");
	sleep_ms(300); /* its completing segment meets the full queue */
	s1 = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(s1 >= 0, "deferfull: the first connection was not accepted");
	t0 = now_s();
	set_timeout(lfd, 8000); /* the client resends within a few seconds */
	s2 = accept4(lfd, NULL, NULL, SOCK_CLOEXEC); /* the resend of the second, now that there is room */
	CHECK(s2 >= 0, "deferfull: the second connection was never accepted: %s", strerror(errno));
	if (s2 >= 0) {
		rc = wait_judged(s2, JUDGE_MS, &info);
		check_done("deferfull: the second connection", rc, &info, hl);
		check_stream("deferfull: the second connection", s2, hdr, (size_t)hl);
		printf("deferfull: the split header that met a full accept queue came through %.2f s after room was made\n",
		       now_s() - t0);
		close(s2);
	}
	if (s1 >= 0)
		close(s1);
	close(first);
	close(second);
	close(lfd);
}

/*
 * A split header abandoned halfway (the client resets), then a new
 * connection from the same source address and port with a whole header: it
 * must not be judged against what the first one left behind.
 */
static void run_abandon(int port, int from_port)
{
	static __u8 hdr[256];
	int hl = test_header(hdr, sizeof(hdr), 40), lfd = listener("127.0.0.1", port, 16, 30);
	int cfd = client_socket("127.0.0.1", from_port), sfd, rc;
	struct ppbpf_info info;

	CHECK(connect_to(cfd, "127.0.0.1", port) == 0 && send_all(cfd, hdr, (size_t)hl / 2) == 0, "abandon: first");
	sleep_ms(100);
	close_reset(cfd);
	sleep_ms(100);
	cfd = client_socket("127.0.0.1", from_port);
	CHECK(connect_to(cfd, "127.0.0.1", port) == 0 && send_all(cfd, hdr, (size_t)hl) == 0, "abandon: second");
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(sfd >= 0, "abandon: the new connection from the same port was never accepted: %s", strerror(errno));
	if (sfd >= 0) {
		rc = wait_judged(sfd, JUDGE_MS, &info);
		check_done("abandon: the new connection", rc, &info, hl);
		check_stream("abandon: the new connection", sfd, hdr, (size_t)hl);
		close(sfd);
	}
	printf("abandon: a new connection from the port of an abandoned split header is judged on its own bytes\n");
	close(cfd);
	close(lfd);
}

/* The Internet checksum of a TCP segment over IPv4 (RFC 793 pseudo-header). */
static __u16 tcp4_checksum(__u32 saddr, __u32 daddr, const __u8 *seg, size_t len)
{
	__u32 sum = 0;

	sum += (saddr >> 16) + (saddr & 0xffff) + (daddr >> 16) + (daddr & 0xffff);
	sum += htons(IPPROTO_TCP) + htons((__u16)len);
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (__u32)seg[i] | (__u32)seg[i + 1] << 8;
	if (len & 1)
		sum += seg[len - 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * N segments to a deferred listener from 127.0.0.1 (a trusted source) with
 * the first bytes of a header, each from its own source port, with no
 * handshake behind them (a raw socket sends them). segments.sh then checks
 * that they left no listener state in the kernel side.
 */
static void run_plant(int port, int n)
{
	static __u8 hdr[64];
	int hl = test_header(hdr, sizeof(hdr), 0), lfd = listener("127.0.0.1", port, 16, 30);
	int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP), sent = 0;
	__u32 lo = htonl(INADDR_LOOPBACK);

	CHECK(raw >= 0, "plant: no raw socket: %s", strerror(errno));
	for (int i = 0; raw >= 0 && i < n; i++) {
		__u8 seg[sizeof(struct tcphdr) + 16] = {};
		struct tcphdr *th = (struct tcphdr *)seg;
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((__u16)port), .sin_addr = { lo } };

		th->source = htons((__u16)(20000 + i));
		th->dest = htons((__u16)port);
		th->seq = htonl(0x10000000u + (__u32)i * 7919);
		th->ack_seq = htonl(0x20000000u + (__u32)i * 104729);
		th->doff = 5;
		th->ack = 1;
		th->psh = 1;
		th->window = htons(65535);
		memcpy(seg + sizeof(*th), hdr, 16 < hl ? 16 : (size_t)hl); /* a header's first 16 bytes: incomplete */
		th->check = tcp4_checksum(lo, lo, seg, sizeof(seg));
		if (sendto(raw, seg, sizeof(seg), 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)sizeof(seg))
			sent++;
	}
	CHECK(sent == n, "plant: sent %d of %d segments", sent, n);
	sleep_ms(200);
	printf("plant: %d segments with header bytes and no handshake sent from a trusted source\n", sent);
	if (raw >= 0)
		close(raw);
	close(lfd);
}

/* ---- IPv6 extension headers -------------------------------------------------------------- */

/*
 * IPv6 clients whose segments carry a destination options or a hop-by-hop
 * header before TCP (a PadN option): the kernel side must read through it,
 * not let the segment pass unjudged.
 */
static void run_ext6(int port)
{
	static __u8 hdr[256];
	/* next header (set by the kernel), length 0 (8 bytes), PadN of 4 bytes after its 2-byte head */
	static const __u8 opts[8] = { 0, 0, 1, 4, 0, 0, 0, 0 };
	static const struct { int opt; const char *name; } kinds[] = {
		{ IPV6_DSTOPTS, "destination options" },
		{ IPV6_HOPOPTS, "hop-by-hop options" },
	};
	int hl = test_header(hdr, sizeof(hdr), 40), lfd = listener("::1", port, 16, 0);

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		int cfd = client_socket("::1", 0), sfd, rc;
		struct ppbpf_info info;
		char what[64];

		snprintf(what, sizeof(what), "IPv6 %s", kinds[k].name);
		CHECK(setsockopt(cfd, IPPROTO_IPV6, kinds[k].opt, opts, sizeof(opts)) == 0, "%s: setsockopt: %s", what,
		      strerror(errno));
		CHECK(connect_to(cfd, "::1", port) == 0 && send_all(cfd, hdr, (size_t)hl) == 0, "%s: send", what);
		sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		CHECK(sfd >= 0, "%s: accept", what);
		if (sfd >= 0) {
			rc = wait_judged(sfd, JUDGE_MS, &info);
			check_done(what, rc, &info, hl);
			check_stream(what, sfd, hdr, (size_t)hl);
			close(sfd);
		}
		close(cfd);
	}
	printf("ext6: headers behind IPv6 destination and hop-by-hop options are judged\n");
	close(lfd);
}

/* ---- the connection table ---------------------------------------------------------------- */

/*
 * N untrusted connections (127.0.0.9) held open on a port that rejects them,
 * no daemon to reset them: then trusted connections on another port must
 * still be tracked, not refused for a full table.
 */
static void run_slots(int rej_port, int ok_port, int n)
{
	static __u8 hdr[256];
	int hl = test_header(hdr, sizeof(hdr), 0), rej = listener("127.0.0.1", rej_port, 4096, 0);
	int ok = listener("127.0.0.1", ok_port, 64, 0), *held = calloc((size_t)n, sizeof(int)), tracked = 0;

	for (int i = 0; i < n; i++) {
		held[i] = client_socket("127.0.0.9", 0);
		CHECK(connect_to(held[i], "127.0.0.1", rej_port) == 0, "slots: untrusted connect %d", i);
	}
	sleep_ms(100);
	for (int i = 0; i < 5; i++) {
		int cfd = client_socket("127.0.0.1", 0), sfd, rc;
		struct ppbpf_info info;

		CHECK(connect_to(cfd, "127.0.0.1", ok_port) == 0 && send_all(cfd, hdr, (size_t)hl) == 0, "slots: send");
		sfd = accept4(ok, NULL, NULL, SOCK_CLOEXEC);
		if (sfd >= 0) {
			rc = wait_judged(sfd, JUDGE_MS, &info);
			check_done("slots: a trusted connection beside the untrusted ones", rc, &info, hl);
			tracked += !rc && info.state == PPBPF_STATE_DONE;
			close(sfd);
		}
		close(cfd);
	}
	printf("slots: %d untrusted connections held open on a rejecting port; %d of 5 trusted ones tracked\n", n,
	       tracked);
	for (int i = 0; i < n; i++)
		close(held[i]);
	free(held);
	close(rej);
	close(ok);
}

/* ---- a policy change while a header is pending ------------------------------------------- */

/*
 * A trusted client sends half a header; segments.sh then stops trusting it
 * (a live policy change) and gives the go-ahead; the client sends the rest.
 * The header must not be honoured: on a port that leaves untrusted peers
 * plain, the connection is plain and the application reads the header's
 * bytes as they came; on a port that rejects them, it reads nothing.
 */
static void run_revoke(int port, const char *expect)
{
	static __u8 hdr[256];
	int hl = test_header(hdr, sizeof(hdr), 40), lfd = listener("127.0.0.1", port, 16, 0);
	int cfd = client_socket("127.0.0.1", 0), sfd, rc;
	struct ppbpf_info info;

	block_go_ahead();
	CHECK(connect_to(cfd, "127.0.0.1", port) == 0 && send_all(cfd, hdr, (size_t)hl / 2) == 0, "revoke: send");
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(sfd >= 0, "revoke: accept");
	printf("PENDING %d\n", (int)getpid());
	fflush(stdout);
	CHECK(wait_go_ahead(30), "revoke: no go-ahead from segments.sh");
	CHECK(send_all(cfd, hdr + hl / 2, (size_t)(hl - hl / 2)) == 0, "revoke: the rest");
	if (sfd >= 0) {
		rc = wait_judged(sfd, JUDGE_MS, &info);
		if (!strcmp(expect, "plain")) {
			CHECK(rc == 0 && info.state == PPBPF_STATE_PLAIN,
			      "revoke: a header pending when its peer lost trust was judged (rc %d, state %u): want plain",
			      rc, info.state);
			check_stream("revoke: the plain connection", sfd, hdr, (size_t)hl);
		} else {
			char b[16];

			CHECK(rc == 0 && info.state == PPBPF_STATE_ERROR && info.error == PPBPF_E_UNTRUSTED,
			      "revoke: rc %d, state %u, error %d: want rejected as untrusted", rc, info.state, info.error);
			set_timeout(sfd, 300);
			CHECK(recv(sfd, b, sizeof(b), 0) <= 0, "revoke: the application read bytes of a rejected header");
		}
		close(sfd);
	}
	printf("revoke: a header pending when its peer lost trust was not honoured (%s)\n", expect);
	close(cfd);
	close(lfd);
}

/* ---- two CPUs at once ------------------------------------------------------------------- */

/* One raw TCP segment, sent at the same moment from a thread pinned to each CPU. */
struct injector {
	pthread_t thread;
	int cpu, raw;
	pthread_barrier_t *go;
	const __u8 *seg;
	size_t len;
	int sent;
};

static void *inject_main(void *arg)
{
	struct injector *in = arg;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = { htonl(INADDR_LOOPBACK) } };
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(in->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	pthread_barrier_wait(in->go);
	in->sent = sendto(in->raw, in->seg, in->len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)in->len;
	return NULL;
}

/* A client socket's next sequence number to send and to receive (TCP_REPAIR, which it stays in). */
static int repair_seqs(int fd, __u32 *snd, __u32 *rcv)
{
	int on = 1, q;
	socklen_t len = sizeof(*snd);

	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)))
		return -errno;
	q = TCP_SEND_QUEUE;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) ||
	    getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, snd, &len))
		return -errno;
	q = TCP_RECV_QUEUE;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) ||
	    getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, rcv, &len))
		return -errno;
	return 0;
}

/*
 * A hand-made segment that carries bytes [from, from + n) of hdr as the
 * client cfd's next ones: cfd goes into TCP_REPAIR (and stays), which gives
 * its sequence numbers. Returns the segment's length, or 0.
 */
static size_t next_segment(int cfd, int port, const __u8 *hdr, size_t from, size_t n, __u8 *seg)
{
	struct tcphdr *th = (struct tcphdr *)seg;
	__u32 snd, rcv, lo = htonl(INADDR_LOOPBACK);
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);

	if (getsockname(cfd, (struct sockaddr *)&me, &ml) || repair_seqs(cfd, &snd, &rcv))
		return 0;
	memset(seg, 0, sizeof(struct tcphdr));
	th->source = me.sin_port;
	th->dest = htons((__u16)port);
	th->seq = htonl(snd);
	th->ack_seq = htonl(rcv);
	th->doff = 5;
	th->ack = th->psh = 1;
	th->window = htons(65535);
	memcpy(seg + sizeof(*th), hdr + from, n);
	th->check = tcp4_checksum(lo, lo, seg, sizeof(*th) + n);
	return sizeof(*th) + n;
}

/* The record's byte count once it reaches `want`, asked every ms for at most 500 ms. */
static __u32 wait_have(int sfd, __u32 want)
{
	struct ppbpf_info info = {};

	for (int k = 0; k < 500; k++) {
		socklen_t il = sizeof(info);

		if (!getsockopt(sfd, SOL_PPBPF, PPBPF_INFO, &info, &il) && info.have == want)
			break;
		sleep_ms(1);
	}
	return info.have;
}

/*
 * A 1,200-byte header whose first 600 bytes came (and wait in the pending
 * entry), then the same last 600 bytes arriving on both CPUs at once: a
 * resend that meets the original, as loopback delivers a packet on the CPU
 * that sends it. Whatever the interleaving, the record must count each byte
 * once and judge the header right. Runs in a namespace without TCP
 * timestamps (segments.sh), so a hand-made segment needs no options.
 */
static void run_race(int port, int rounds)
{
	static __u8 hdr[2048], seg[sizeof(struct tcphdr) + 1024];
	int hl = test_header(hdr, sizeof(hdr), 1169), lfd = listener("127.0.0.1", port, 64, 0), bad = 0;
	size_t half = (size_t)hl / 2;
	pthread_barrier_t go;

	CHECK(hl == 1200, "race: a %d-byte header", hl);
	for (int r = 0; r < rounds && !bad; r++) {
		struct injector in[2] = { { .cpu = 0 }, { .cpu = 1 } };
		struct ppbpf_info info;
		int cfd = client_socket("127.0.0.1", 0), sfd, rc;
		__u32 have;
		size_t len;

		CHECK(connect_to(cfd, "127.0.0.1", port) == 0 && send_all(cfd, hdr, half) == 0, "race: the first piece");
		sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		CHECK(sfd >= 0, "race: accept");
		have = wait_have(sfd, (__u32)half); /* the first piece taken in, and held */
		CHECK(have == half, "race: round %d: the first piece was not taken in (%u bytes)", r, have);
		len = next_segment(cfd, port, hdr, half, (size_t)hl - half, seg);
		CHECK(len, "race: the client's sequence numbers: %s", strerror(errno));
		pthread_barrier_init(&go, NULL, 2);
		for (int k = 0; k < 2; k++) {
			in[k].raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);
			in[k].go = &go;
			in[k].seg = seg;
			in[k].len = len;
			pthread_create(&in[k].thread, NULL, inject_main, &in[k]);
		}
		for (int k = 0; k < 2; k++) {
			pthread_join(in[k].thread, NULL);
			CHECK(in[k].sent, "race: a raw segment was not sent");
			close(in[k].raw);
		}
		pthread_barrier_destroy(&go);
		rc = wait_judged(sfd, JUDGE_MS, &info);
		check_done("race: the header completed on two CPUs at once", rc, &info, hl);
		CHECK(rc || info.have == (__u32)hl, "race: round %d: the record counted %u bytes of a %d-byte header", r,
		      info.have, hl);
		bad = t_failures;
		close_reset(sfd); /* at once: the next round's client may get this one's port */
		close_reset(cfd);
	}
	if (!bad)
		printf("race: %d headers completed by the same segment on two CPUs at once: each counted once\n", rounds);
	close(lfd);
}

/*
 * A header pending when the server closes its socket (an orphan in
 * FIN_WAIT1), with the client's pure ACKs lost (the dropper: as a loaded
 * loopback's backlog loses them): the client's resent header bytes carry
 * the ACK of the server's FIN, and nothing will read them. Held, they would
 * keep the orphan alive until its FIN retries run out (minutes); let
 * through, TCP resets it at once.
 */
static void run_orphan(int port)
{
	static __u8 hdr[256];
	int hl = test_header(hdr, sizeof(hdr), 100), lfd = listener("127.0.0.1", port, 8, 0), map = dropper_map();
	int cfd = client_socket("127.0.0.1", 0), sfd;
	struct dropper dr = { .port = (__u32)port, .acks = 1 }, off = { 0 };
	struct tcp_info ti = {};
	socklen_t tl;
	__u32 zero = 0;
	double end;

	CHECK(map >= 0, "no dropper: segments.sh sets PPBPF_TEST_DROPPER to its pin folder");
	CHECK(hl > 40 && connect_to(cfd, "127.0.0.1", port) == 0 && send_all(cfd, hdr, 40) == 0, "orphan: 40 bytes");
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(sfd >= 0 && wait_have(sfd, 40) == 40, "orphan: the first 40 bytes were not taken in");
	CHECK(map < 0 || bpf_map_update_elem(map, &zero, &dr, BPF_ANY) == 0, "cannot set the dropper");
	close(sfd); /* its FIN: the client's pure ACK of it is lost */
	for (end = now_s() + 3; now_s() < end; sleep_ms(20)) {
		tl = sizeof(ti);
		if (!getsockopt(cfd, IPPROTO_TCP, TCP_INFO, &ti, &tl) && ti.tcpi_state == TCP_CLOSE)
			break;
	}
	if (map >= 0)
		bpf_map_update_elem(map, &zero, &off, BPF_ANY);
	CHECK(ti.tcpi_state == TCP_CLOSE, "orphan: the client is still in state %u after 3 s: the server's orphan "
	      "held the bytes that carry the ACK of its FIN", ti.tcpi_state);
	if (ti.tcpi_state == TCP_CLOSE)
		printf("orphan: a header pending at the server's close, the client's pure ACKs lost: the orphan was reset\n");
	close(cfd);
	close(lfd);
	if (map >= 0)
		close(map);
}

/* The server closes its socket from a thread pinned to a CPU, at the barrier. */
struct closer {
	pthread_t thread;
	int cpu, fd;
	pthread_barrier_t *go;
};

static void *close_main(void *arg)
{
	struct closer *c = arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(c->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	pthread_barrier_wait(c->go);
	close_reset(c->fd);
	return NULL;
}

/*
 * A pending header whose next piece (still not the whole header) arrives on
 * one CPU while the application closes the socket on the other: the pending
 * entry ingress stores then must not outlive the socket (segments.sh checks
 * the maps are empty after all rounds).
 */
static void run_closerace(int port, int rounds)
{
	static __u8 hdr[2048], seg[sizeof(struct tcphdr) + 1024];
	int lfd = listener("127.0.0.1", port, 64, 0);
	size_t piece = 100, next = 300; /* of a 1,200-byte header: a small pending entry, then it grows out of it */

	CHECK(test_header(hdr, sizeof(hdr), 1169) == 1200, "closerace: the header's size");
	pthread_barrier_t go;

	for (int r = 0; r < rounds; r++) {
		struct injector in = { .cpu = 1 };
		struct closer cl = { .cpu = 0 };
		int cfd = client_socket("127.0.0.1", 0), sfd;

		CHECK(connect_to(cfd, "127.0.0.1", port) == 0 && send_all(cfd, hdr, piece) == 0, "closerace: a piece");
		sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		CHECK(sfd >= 0, "closerace: accept");
		CHECK(wait_have(sfd, (__u32)piece) == piece, "closerace: round %d: the first piece was not taken in", r);
		in.len = next_segment(cfd, port, hdr, piece, next, seg); /* 400 of 1,200 bytes: still pending */
		CHECK(in.len, "closerace: the client's sequence numbers: %s", strerror(errno));
		pthread_barrier_init(&go, NULL, 2);
		in.raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);
		in.go = cl.go = &go;
		in.seg = seg;
		cl.fd = sfd;
		pthread_create(&in.thread, NULL, inject_main, &in);
		pthread_create(&cl.thread, NULL, close_main, &cl);
		pthread_join(in.thread, NULL);
		pthread_join(cl.thread, NULL);
		close(in.raw);
		pthread_barrier_destroy(&go);
		close_reset(cfd);
	}
	printf("closerace: %d pending headers closed while their next piece came in on the other CPU\n", rounds);
	close(lfd);
}

/* ---- trusted local peers --------------------------------------------------------------- */

/*
 * A client on this host, from 127.0.0.1 (a trusted address), running as
 * `uid`, sends a whole header; `want` is what the server must see: "done"
 * (honoured) or "plain" (the port takes local peers of another user only,
 * and leaves untrusted ones plain: the header is not honoured and the
 * application reads its bytes as data).
 */
static void run_localuid(int port, int uid, const char *want, int defer_s)
{
	static __u8 hdr[256];
	int hl = test_header(hdr, sizeof(hdr), 0), lfd = listener("127.0.0.1", port, 16, defer_s), sfd, rc, status;
	struct ppbpf_info info;
	char what[64];
	pid_t child;

	snprintf(what, sizeof(what), "a local client of uid %d%s", uid, defer_s ? ", deferred accept" : "");
	child = fork();
	if (child == 0) { /* the client, as that user (a socket belongs to the user who makes it) */
		int cfd;
		char b;

		if (setgid((gid_t)uid) || setuid((uid_t)uid))
			_exit(3);
		cfd = client_socket("127.0.0.1", 0);
		if (connect_to(cfd, "127.0.0.1", port) || send_all(cfd, hdr, (size_t)hl))
			_exit(3);
		recv(cfd, &b, 1, 0); /* until the server closes */
		_exit(0);
	}
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(sfd >= 0, "%s: accept: %s", what, strerror(errno));
	if (sfd >= 0) {
		rc = wait_judged(sfd, JUDGE_MS, &info);
		if (!strcmp(want, "done")) {
			check_done(what, rc, &info, hl);
		} else {
			CHECK(rc == 0 && info.state == PPBPF_STATE_PLAIN,
			      "%s: rc %d, state %u: its header must not be honoured", what, rc, info.state);
			check_stream(what, sfd, hdr, (size_t)hl);
		}
		close(sfd);
	}
	CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "%s: the client failed", what);
	printf("localuid: %s: %s\n", what, want);
	close(lfd);
}

/* ---- modes: what segments.sh runs ------------------------------------------------------- */

static int mode_loss(char **a)
{
	run_loss(atoi(a[0]));
	return 0;
}

static int mode_deferfull(char **a)
{
	run_deferfull(atoi(a[0]));
	return 0;
}

static int mode_abandon(char **a)
{
	run_abandon(atoi(a[0]), atoi(a[1]));
	return 0;
}

static int mode_plant(char **a)
{
	run_plant(atoi(a[0]), atoi(a[1]));
	return 0;
}

static int mode_ext6(char **a)
{
	run_ext6(atoi(a[0]));
	return 0;
}

static int mode_slots(char **a)
{
	run_slots(atoi(a[0]), atoi(a[1]), atoi(a[2]));
	return 0;
}

static int mode_revoke(char **a)
{
	run_revoke(atoi(a[0]), a[1]);
	return 0;
}

static int mode_race(char **a)
{
	run_race(atoi(a[0]), atoi(a[1]));
	return 0;
}

static int mode_orphan(char **a)
{
	run_orphan(atoi(a[0]));
	return 0;
}

static int mode_closerace(char **a)
{
	run_closerace(atoi(a[0]), atoi(a[1]));
	return 0;
}

static int mode_localuid(char **a)
{
	run_localuid(atoi(a[0]), atoi(a[1]), a[2], atoi(a[3]));
	return 0;
}

int main(int argc, char **argv)
{
	/* in the order segments.sh runs them */
	static const struct test_mode modes[] = {
		{ "loss", "PORT", 1, 1, mode_loss },
		{ "race", "PORT ROUNDS", 2, 2, mode_race },
		{ "closerace", "PORT ROUNDS", 2, 2, mode_closerace },
		{ "orphan", "PORT", 1, 1, mode_orphan },
		{ "deferfull", "PORT", 1, 1, mode_deferfull },
		{ "abandon", "PORT FROM_PORT", 2, 2, mode_abandon },
		{ "plant", "PORT N", 2, 2, mode_plant },
		{ "ext6", "PORT", 1, 1, mode_ext6 },
		{ "revoke", "PORT plain|reject", 2, 2, mode_revoke },
		{ "localuid", "PORT UID done|plain DEFER_S", 4, 4, mode_localuid },
		{ "slots", "REJ_PORT OK_PORT N", 3, 3, mode_slots },
	};

	signal(SIGPIPE, SIG_IGN);
	return T_RUN_MODE(argc, argv, "segments_test", modes);
}
