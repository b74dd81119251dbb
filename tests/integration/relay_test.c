// SPDX-License-Identifier: MIT
/*
 * ppbpf_relay on real sockets, in a cgroup where ppbpf is attached (relay.sh):
 *
 *   checks IN_PORT SINK_PORT   IN_PORT has a receive policy (trusting
 *       127.0.0.1), SINK_PORT none: a client sends a header to IN_PORT, and
 *       the accepted socket's client is relayed on connections to SINK_PORT,
 *       whose raw bytes are read here: the header (v1 exact, v2 with its
 *       TLVs), then the payload; and each documented error
 *   chain LISTEN_PORT TO_PORT FLAGS...   a relay: for each FLAGS (v1, v2, or
 *       v2+tlvs+unique-id+crc32c...), accept one connection with
 *       ppbpf_accept, connect to TO_PORT with ppbpf_relay, and copy bytes
 *       both ways until both ends close; one JSON line per connection
 *
 * Headers carry documentation addresses; traffic stays on loopback.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <poll.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <ppbpf/ppbpf.h>
#include <ppbpf/parse.h>
#include "testlib.h"

#define ORIG_SRC4 "203.0.113.9"
#define ORIG_DST4 "198.51.100.3"
#define ORIG_SRC6 "2001:db8::7"
#define ORIG_DST6 "2001:db8::1"
#define ORIG_SRC6_FULL "2001:0db8:0000:0000:0000:0000:0000:0007"
#define ORIG_DST6_FULL "2001:0db8:0000:0000:0000:0000:0000:0001"
#define ORIG_SPORT 4242
#define ORIG_DPORT 443
#define IO_MS 10000
/* How long the chain's relay waits for each connection. */
#define ACCEPT_MS 60000

static int tcp_socket(int af)
{
	int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0) {
		perror("socket");
		exit(2);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_timeout(fd, IO_MS);
	return fd;
}

static int listen_on(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((__u16)port) };
	int fd = tcp_socket(AF_INET);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 16)) {
		perror("listen");
		exit(2);
	}
	return fd;
}

static int connect_loopback(int fd, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((__u16)port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return connect(fd, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;
}

/* Close with an RST: the kernel's record goes at once (SO_LINGER 0). */
static void close_reset(int fd)
{
	struct linger l = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* A v2 header from the original client (v6: the IPv6 pair), with AUTHORITY, UNIQUE_ID, NOOP and CRC32C. */
static int inbound_header(__u8 *out, size_t cap, bool v6)
{
	static const char authority[] = "relay.ppbpf.example", id[] = "first-hop-id-42";
	static const __u8 zeros[5];
	struct ppbpf_tlv tlvs[] = {
		{ PPBPF_TLV_AUTHORITY, sizeof(authority) - 1, (const __u8 *)authority },
		{ PPBPF_TLV_UNIQUE_ID, sizeof(id) - 1, (const __u8 *)id },
		{ PPBPF_TLV_NOOP, sizeof(zeros), zeros },
	};
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_PROXY, .family = v6 ? PPBPF_FAM_TCP6 : PPBPF_FAM_TCP4,
				 .src_port = ORIG_SPORT, .dst_port = ORIG_DPORT, .tlvs = tlvs, .n_tlvs = 3,
				 .flags = PPBPF_BUILD_CRC32C };
	int af = v6 ? AF_INET6 : AF_INET;

	inet_pton(af, v6 ? ORIG_SRC6 : ORIG_SRC4, b.src_addr);
	inet_pton(af, v6 ? ORIG_DST6 : ORIG_DST4, b.dst_addr);
	return ppbpf_build(&b, out, cap);
}

/* A tracked inbound socket on in_port whose header (v4 or v6 original client) was accepted. */
static int tracked_inbound(int lfd, int in_port, bool v6, int *client)
{
	__u8 hdr[512];
	int n = inbound_header(hdr, sizeof(hdr), v6), fd;

	*client = tcp_socket(AF_INET);
	CHECK(n > 0 && connect_loopback(*client, in_port) == 0 && send_all(*client, hdr, (size_t)n) == 0,
	      "the inbound client: %s", strerror(errno));
	fd = ppbpf_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0, "ppbpf_accept: %s", strerror(errno));
	return fd;
}

/* Read what one connection to the sink carried until EOF (at most cap bytes). */
static ssize_t read_all(int fd, __u8 *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t r = recv(fd, buf + got, cap - got, 0);

		if (r <= 0)
			return r < 0 ? -1 : (ssize_t)got;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Relay in's client on a new connection to sink_port with flags, write payload, return what the sink read. */
static ssize_t relayed_bytes(int in, int sink, int sink_port, unsigned int flags, __u8 *buf, size_t cap)
{
	static const char payload[] = "payload after the relayed header";
	int out = tcp_socket(AF_INET), srv, rc = ppbpf_relay(in, out, flags);
	ssize_t n;

	CHECK(rc == 0, "ppbpf_relay(flags %#x) before connect: %s", flags, strerror(-rc));
	CHECK(connect_loopback(out, sink_port) == 0, "connect to the sink: %s", strerror(errno));
	CHECK(send_all(out, payload, sizeof(payload) - 1) == 0, "the payload: %s", strerror(errno));
	shutdown(out, SHUT_WR);
	srv = accept4(sink, NULL, NULL, SOCK_CLOEXEC);
	CHECK(srv >= 0, "the sink's accept: %s", strerror(errno));
	n = srv >= 0 ? read_all(srv, buf, cap) : -1;
	CHECK(n > (ssize_t)sizeof(payload) - 1 && !memcmp(buf + n - (sizeof(payload) - 1), payload, sizeof(payload) - 1),
	      "flags %#x: the payload does not follow the header whole (%zd bytes read)", flags, n);
	if (srv >= 0)
		close(srv);
	close(out);
	return n - (ssize_t)(sizeof(payload) - 1);
}

/* The TLV of type in a parsed header, or NULL. */
static bool header_tlv(const __u8 *buf, const struct ppbpf_hdr *h, __u8 type, struct ppbpf_tlv *t)
{
	return ppbpf_tlv_find(buf, h, type, t) == 1;
}

static void check_v2_relay(int in, int sink, int sink_port, bool v6)
{
	__u8 buf[4096];
	ssize_t hl = relayed_bytes(in, sink, sink_port, PPBPF_RELAY_TLVS | PPBPF_RELAY_CRC32C | PPBPF_RELAY_UNIQUE_ID,
				   buf, sizeof(buf));
	struct ppbpf_hdr h;
	struct ppbpf_tlv t;
	char src[64] = "", dst[64] = "";
	int rc = hl > 0 ? ppbpf_parse(buf, (__u32)hl, &h) : -1;
	int af = v6 ? AF_INET6 : AF_INET;

	CHECK(rc == (int)hl, "v2 relay: the header does not parse to its own length (%d, %zd)", rc, hl);
	if (rc != (int)hl)
		return;
	ppbpf_format_ip(af, h.src_addr, src, sizeof(src));
	ppbpf_format_ip(af, h.dst_addr, dst, sizeof(dst));
	CHECK(h.version == 2 && h.family == (v6 ? PPBPF_FAM_TCP6 : PPBPF_FAM_TCP4), "v2 relay: version %u family %u",
	      h.version, h.family);
	CHECK(!strcmp(src, v6 ? ORIG_SRC6 : ORIG_SRC4) && h.src_port == ORIG_SPORT, "v2 relay: source %s:%u", src,
	      h.src_port);
	CHECK(!strcmp(dst, v6 ? ORIG_DST6 : ORIG_DST4) && h.dst_port == ORIG_DPORT, "v2 relay: destination %s:%u", dst,
	      h.dst_port);
	CHECK(header_tlv(buf, &h, PPBPF_TLV_AUTHORITY, &t) && t.len == 19 && !memcmp(t.value, "relay.ppbpf.example", 19),
	      "v2 relay: the AUTHORITY TLV was not relayed");
	CHECK(header_tlv(buf, &h, PPBPF_TLV_UNIQUE_ID, &t) && t.len == 15 && !memcmp(t.value, "first-hop-id-42", 15),
	      "v2 relay: the first hop's UNIQUE_ID was not kept (or a new one replaced it)");
	CHECK(!header_tlv(buf, &h, PPBPF_TLV_NOOP, &t), "v2 relay: a NOOP TLV was relayed");
	/* (ppbpf_parse refuses a CRC32C that does not match the header) */
	CHECK(header_tlv(buf, &h, PPBPF_TLV_CRC32C, &t) && t.len == 4, "v2 relay: no CRC32C TLV of its own");
}

static void check_v1_relay(int in, int sink, int sink_port, bool v6)
{
	__u8 buf[4096];
	char want[128];
	ssize_t hl = relayed_bytes(in, sink, sink_port, PPBPF_RELAY_V1, buf, sizeof(buf));
	/* the kernel writes IPv6 addresses in full (bpf_snprintf's %pI6): valid, if long */
	int wl = snprintf(want, sizeof(want), "PROXY %s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4",
			  v6 ? ORIG_SRC6_FULL : ORIG_SRC4, v6 ? ORIG_DST6_FULL : ORIG_DST4, ORIG_SPORT, ORIG_DPORT);

	CHECK(hl == wl && !memcmp(buf, want, (size_t)wl), "v1 relay: got %.*s, want %s", (int)(hl > 0 ? hl : 0), buf,
	      want);
}

/* Plain v2 with UNIQUE_ID asked and no TLVs relayed: a new 32-digit id of the kernel's. */
static void check_new_unique_id(int in, int sink, int sink_port)
{
	__u8 buf[4096];
	ssize_t hl = relayed_bytes(in, sink, sink_port, PPBPF_RELAY_UNIQUE_ID, buf, sizeof(buf));
	struct ppbpf_hdr h;
	struct ppbpf_tlv t;

	CHECK(hl > 0 && ppbpf_parse(buf, (__u32)hl, &h) == (int)hl, "unique-id relay: the header does not parse");
	if (hl <= 0 || ppbpf_parse(buf, (__u32)hl, &h) != (int)hl)
		return;
	CHECK(header_tlv(buf, &h, PPBPF_TLV_UNIQUE_ID, &t) && t.len == 32, "unique-id relay: no 32-digit UNIQUE_ID");
	CHECK(!header_tlv(buf, &h, PPBPF_TLV_AUTHORITY, &t), "unique-id relay: TLVs relayed without PPBPF_RELAY_TLVS");
}

/* Each documented error of the relay calls. */
static void check_errors(int in, int sink, int sink_port)
{
	struct ppbpf_relay bad = { .flags = 0x100 };
	__u64 token, again;
	int out, srv, rc;

	CHECK(ppbpf_relay_token(in, &token) == 0 && ppbpf_relay_token(in, &again) == 0 && token == again,
	      "the token changed between two calls for the same socket");
	bad.token = token;
	out = tcp_socket(AF_INET);
	CHECK(setsockopt(out, SOL_PPBPF, PPBPF_RELAY, &bad, sizeof(bad)) < 0 && errno == EINVAL,
	      "unknown flags: %s, want EINVAL", strerror(errno));
	CHECK(setsockopt(out, SOL_PPBPF, PPBPF_RELAY, &bad, 8) < 0 && errno == EINVAL, "a short optlen: %s, want EINVAL",
	      strerror(errno));
	rc = ppbpf_relay_with(out, token ^ 0x5a5a5a5a5a5a5a5aULL, 0);
	CHECK(rc == -ENOENT, "an unknown token: %s, want ENOENT", strerror(-rc));
	/* connected, not a --send destination: nothing would write it */
	CHECK(connect_loopback(out, sink_port) == 0, "connect: %s", strerror(errno));
	rc = ppbpf_relay(in, out, 0);
	CHECK(rc == -EISCONN, "relay on a connected socket: %s, want EISCONN", strerror(-rc));
	CHECK(send_all(out, "x", 1) == 0, "a first byte");
	srv = accept4(sink, NULL, NULL, SOCK_CLOEXEC);
	for (int k = 0; k < 100; k++) { /* the byte is out once the sink has it */
		int inq = 0;

		if (srv >= 0 && ioctl(srv, FIONREAD, &inq) == 0 && inq)
			break;
		sleep_ms(10);
	}
	rc = ppbpf_relay(in, out, 0);
	CHECK(rc == -EALREADY, "relay after the first send: %s, want EALREADY", strerror(-rc));
	close(out);
	if (srv >= 0)
		close(srv);
	/* the sink's socket has no record: nothing to relay */
	out = tcp_socket(AF_INET);
	CHECK(connect_loopback(out, sink_port) == 0, "connect: %s", strerror(errno));
	srv = accept4(sink, NULL, NULL, SOCK_CLOEXEC);
	rc = ppbpf_relay_token(srv, &again);
	CHECK(rc == -ENODATA, "a token for an untracked socket: %s, want ENODATA", strerror(-rc));
	close(srv);
	close(out);
	/* Fast Open after a relay: the first bytes would leave in the SYN */
	out = tcp_socket(AF_INET);
	CHECK(ppbpf_relay(in, out, 0) == 0, "relay before a Fast Open connect");
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((__u16)sink_port) };

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CHECK(sendto(out, "tfo", 3, MSG_FASTOPEN | MSG_NOSIGNAL, (struct sockaddr *)&a, sizeof(a)) < 0 &&
			      errno == EPERM,
		      "sendto(MSG_FASTOPEN) after a relay: %s, want EPERM", strerror(errno));
	}
	close(out);
}

static int mode_checks(char **a)
{
	int in_port = atoi(a[0]), sink_port = atoi(a[1]);
	int lfd = listen_on(in_port), sink = listen_on(sink_port);

	for (int v6 = 0; v6 <= 1; v6++) {
		int client, in = tracked_inbound(lfd, in_port, v6, &client), out, rc;
		__u64 token;

		if (in < 0)
			return 1;
		check_v2_relay(in, sink, sink_port, v6);
		check_v1_relay(in, sink, sink_port, v6);
		if (!v6) {
			check_new_unique_id(in, sink, sink_port);
			check_errors(in, sink, sink_port);
		}
		/* the token goes with its socket */
		CHECK(ppbpf_relay_token(in, &token) == 0, "a token");
		close_reset(in);
		close_reset(client);
		out = tcp_socket(AF_INET);
		rc = -ENOENT;
		for (int k = 0; k < 100 && (rc = ppbpf_relay_with(out, token, 0)) != -ENOENT; k++)
			sleep_ms(10);
		CHECK(rc == -ENOENT, "the token of a closed socket: %s, want ENOENT", strerror(-rc));
		close(out);
	}
	close(lfd);
	close(sink);
	return 0;
}

/* ---- chain: a relay between two HAProxies --------------------------------------------------- */

static unsigned int chain_flags(const char *spec)
{
	unsigned int f = 0;
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *w = strtok_r(buf, "+", &save); w; w = strtok_r(NULL, "+", &save)) {
		if (!strcmp(w, "v1"))
			f |= PPBPF_RELAY_V1;
		else if (!strcmp(w, "tlvs"))
			f |= PPBPF_RELAY_TLVS;
		else if (!strcmp(w, "unique-id"))
			f |= PPBPF_RELAY_UNIQUE_ID;
		else if (!strcmp(w, "crc32c"))
			f |= PPBPF_RELAY_CRC32C;
		else if (strcmp(w, "v2")) {
			fprintf(stderr, "relay_test: unknown flag %s\n", w);
			exit(2);
		}
	}
	return f;
}

/* Copy bytes both ways between a and b until both directions have ended. Returns 0 or -errno. */
static int pipe_both(int a, int b)
{
	struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
	const int fds[2] = { a, b };
	bool open_[2] = { true, true };
	char buf[16384];

	while (open_[0] || open_[1]) {
		int n = poll(p, 2, IO_MS);

		if (n <= 0)
			return n ? -errno : -ETIMEDOUT;
		for (int i = 0; i < 2; i++) {
			ssize_t r;

			if (!open_[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = recv(fds[i], buf, sizeof(buf), 0);
			if (r < 0)
				return -errno;
			if (r == 0) {
				shutdown(fds[1 - i], SHUT_WR);
				open_[i] = false;
				p[i].fd = -1; /* poll no more */
			} else if (send_all(fds[1 - i], buf, (size_t)r)) {
				return -errno;
			}
		}
	}
	return 0;
}

static int mode_chain(char **a)
{
	int listen_port = atoi(a[0]), to_port = atoi(a[1]), lfd = listen_on(listen_port);

	set_timeout(lfd, ACCEPT_MS); /* the first client may come late: the HAProxies start first (slowly under qemu) */
	printf("{\"listening\":%d}\n", listen_port);
	fflush(stdout);
	for (int i = 2; a[i]; i++) {
		unsigned int flags = chain_flags(a[i]);
		int in = ppbpf_accept(lfd, NULL, NULL, SOCK_CLOEXEC), out = -1, rc;

		rc = in < 0 ? -errno : 0;
		if (!rc) {
			out = tcp_socket(AF_INET);
			rc = ppbpf_relay(in, out, flags);
		}
		if (!rc)
			rc = connect_loopback(out, to_port);
		if (!rc)
			rc = pipe_both(in, out);
		printf("{\"index\":%d,\"flags\":\"%s\",\"ok\":%s,\"error\":\"%s\"}\n", i - 2, a[i], rc ? "false" : "true",
		       rc ? strerror(-rc) : "");
		fflush(stdout);
		CHECK(rc == 0, "chain: connection %d (%s): %s", i - 2, a[i], strerror(-rc));
		if (out >= 0)
			close(out);
		if (in >= 0)
			close(in);
	}
	close(lfd);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct test_mode modes[] = {
		{ "checks", "IN_PORT SINK_PORT", 2, 2, mode_checks },
		{ "chain", "LISTEN_PORT TO_PORT FLAGS...", 3, 16, mode_chain },
	};

	signal(SIGPIPE, SIG_IGN);
	return T_RUN_MODE(argc, argv, "relay_test", modes);
}
