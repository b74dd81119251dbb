// SPDX-License-Identifier: MIT
/*
 * Streams for the sending side: a client that opens plain TCP connections
 * (no PROXY header of its own unless asked) and writes in many different
 * ways, and a server that checks that each stream it accepts starts with a
 * PROXY header naming the connection's own two ends, followed by the
 * client's bytes, unchanged.
 *
 *   recv      accept N connections; check header, preamble and counter stream
 *   send      one connection: preamble + counters, with one write pattern
 *   many      N connections of random patterns and lengths, C at once
 *   selftest  the header builder against the shared parser, the stream generator
 *
 * The client's stream: [its own PROXY header, --self-header only], a 16-byte
 * preamble (little endian: "SN", u16 check = low 16 bits of CRC32C over bytes
 * 4..15, u32 index, u64 payload length), then the payload: byte o is byte o%8
 * of the little-endian u64 o/8 (counters 0, 1, 2, ... as a byte stream). The
 * server expects the header at offset 0 (written by the kernel, or by the
 * client itself with --self-header), then exactly that stream. The preamble's magic starts with neither 'P' nor 0x0D, so the
 * shared parser says NOT_PROXY on its first byte: "no header" is decided at
 * once.
 *
 * After EOF the server writes "OK\r\n" (the connection was ok) or "NG\r\n"
 * and closes; the client's verdict is that reply (--no-verdict: a clean EOF
 * is enough, for servers other than `recv`).
 *
 * Hidden option of send (not in --help, for the checks of this program
 * itself): --corrupt-at N flips (xor 0x5a) byte N of the bytes the client
 * writes (offset 0 = the first byte of its own header, or of the preamble
 * without one).
 *
 * Every line a script reads is one JSON object on stdout, written with one
 * write(2). Errors go to stderr. Every blocking call has a timeout (--timeout,
 * default 20 s: SO_RCVTIMEO/SO_SNDTIMEO, poll()).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <ppbpf/parse.h>
#define STREAMLIB_PROG "send_test"
#define STREAMLIB_DOTTED_QUADS_ONLY 1
#include "testlib.h"
#include "streamlib.h"

/* ---- constants of the wire contract ------------------------------------------ */

#define PRE_LEN 16
#define PRE_MAGIC "SN" /* then a 16-bit check of the other 12 bytes */
#define VERDICT_LEN 4
#define VERDICT_OK "OK\r\n"
#define VERDICT_BAD "NG\r\n"

#define TIMEOUT_S 20
#define CONCURRENCY 32
#define BYTES_MAX_DEFAULT (1u << 20)

/* Longest self header: "PROXY TCP6 " + 2 x 39 + 2 x " 65535" + spaces + CRLF < 108. */
#define SELF_HDR_CAP 128
/* The server keeps the stream's first bytes until the preamble is found. */
#define HEAD_CAP (PPBPF_V2_MAX_LEN + PRE_LEN + 4096)
#define RBUF_SIZE (256 * 1024)
/* One call of the client writes at most this much; iovec gaps included. */
#define SCRATCH_SIZE (2u << 20)
#define IOV_GAP 8
#define MAX_IOV 128
/* sendfile: the temp file's pages this far behind the stream are punched out. */
#define PUNCH_BEHIND (64ull << 20)

static int timeout_s = TIMEOUT_S;

/* ---- small utilities ----------------------------------------------------------- */

/* A size: a number with an optional K, M or G (powers of 1024). */
static uint64_t need_size(const char *opt, const char *s, uint64_t max)
{
	char buf[64];
	size_t n = s ? strlen(s) : 0;
	uint64_t mul = 1, v;

	if (n && n < sizeof(buf)) {
		char last = s[n - 1];

		mul = last == 'K' || last == 'k' ? 1ull << 10 : last == 'M' || last == 'm' ? 1ull << 20
				    : last == 'G' || last == 'g' ? 1ull << 30 : 1;
		memcpy(buf, s, n + 1);
		if (mul > 1)
			buf[n - 1] = 0;
		if (parse_u64(buf, &v) && v <= max / mul && v * mul <= max)
			return v * mul;
	}
	die_usage("%s: '%s' is not a size from 0 to %" PRIu64 " (K, M, G allowed)", opt, s ? s : "", max);
}

/* 1..max, log-uniform: as many tiny sizes as huge ones. */
static size_t rand_size(uint64_t *rng, size_t max)
{
	unsigned bits = 0;
	size_t lim;

	if (max <= 1)
		return 1;
	while (bits < 40 && ((size_t)1 << (bits + 1)) <= max)
		bits++;
	lim = (size_t)1 << (rng_next(rng) % (bits + 1));
	lim = 1 + (size_t)(rng_next(rng) % lim);
	return lim > max ? max : lim;
}

/* errno's name in the JSON lines: streamlib.h's, those of non-blocking connects and calls, else strerror(). */
static const char *errname(int e)
{
	const char *name = sock_errname(e);

	if (name)
		return name;
	switch (e) {
	case EAGAIN: return "EAGAIN";
	case EINPROGRESS: return "EINPROGRESS";
	case ENOTCONN: return "ENOTCONN";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EALREADY: return "EALREADY";
	default: return strerror(e);
	}
}

/* The shared parser's status codes, by name. */
static const char *status_name(int rc)
{
	static const char *const names[] = {
		"?", "E_INCOMPLETE", "E_NOT_PROXY", "E_TOO_LARGE", "E_V1_TOO_LONG", "E_V1_PROTO",
		"E_V1_SYNTAX", "E_V1_CRLF", "E_V1_ADDR", "E_V1_PORT", "E_V2_VERSION", "E_V2_COMMAND",
		"E_V2_FAMILY", "E_V2_ADDR_LEN", "E_TLV_TRUNCATED", "E_CRC32C_LEN", "E_CRC32C_DUP",
		"E_CRC32C", "E_UNIQUE_ID_LEN", "E_SSL",
	};

	if (rc < 0 && -rc < (int)(sizeof(names) / sizeof(names[0])))
		return names[-rc];
	return "E_UNKNOWN";
}

static const char *family_name(int fam)
{
	static const char *const names[] = { "UNSPEC", "TCP4", "TCP6", "UDP4", "UDP6", "UNIX_STREAM", "UNIX_DGRAM",
					     "UNKNOWN" };

	return fam >= 0 && fam < (int)(sizeof(names) / sizeof(names[0])) ? names[fam] : "?";
}

/* ---- addresses ------------------------------------------------------------------- */

/* The address a parsed header names (src or dst) as a socket address. */
static void hdr_sockaddr(const struct ppbpf_hdr *h, bool src, struct sockaddr_storage *ss)
{
	const uint8_t *a = src ? h->src_addr : h->dst_addr;
	int port = src ? h->src_port : h->dst_port;

	memset(ss, 0, sizeof(*ss));
	if (h->family == PPBPF_FAM_TCP4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		s4->sin_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		s6->sin6_port = htons((uint16_t)port);
	}
}

/* ---- PROXY headers (the client's own, --self-header) ----------------------------- */

/*
 * The header a correct sending side writes for a socket whose local end is
 * `self` and whose remote end is `peer`: source = self, destination = peer.
 * v4-mapped IPv6 ends are written as TCP4. Returns its length, 0 if the ends
 * are of no one family.
 */
static size_t build_header(uint8_t *out, int version, const struct sockaddr *self, const struct sockaddr *peer)
{
	return proxy_header(out, SELF_HDR_CAP, version, self, peer);
}

/* ---- the stream: [self header] preamble payload ------------------------------------ */

struct stream {
	uint8_t head[SELF_HDR_CAP + PRE_LEN]; /* self header, then the preamble */
	size_t hdr_len, head_len;
	uint64_t total;     /* head_len + payload */
	int64_t corrupt_at; /* -1: none */
};

/* The preamble's check: the low 16 bits of CRC32C over its bytes 4..15, little endian. */
static uint16_t preamble_check(const uint8_t *p)
{
	return (uint16_t)ppbpf_crc32c(p + 4, PRE_LEN - 4);
}

static void preamble_encode(uint8_t *p, uint32_t index, uint64_t len)
{
	uint32_t i = htole32(index);
	uint64_t l = htole64(len);
	uint16_t c;

	memcpy(p, PRE_MAGIC, 2);
	memcpy(p + 4, &i, 4);
	memcpy(p + 8, &l, 8);
	c = preamble_check(p);
	p[2] = (uint8_t)c;
	p[3] = (uint8_t)(c >> 8);
}

/* Is there a preamble (magic and check) at p? */
static bool preamble_at(const uint8_t *p)
{
	uint16_t c;

	if (memcmp(p, PRE_MAGIC, 2))
		return false;
	c = preamble_check(p);
	return p[2] == (uint8_t)c && p[3] == (uint8_t)(c >> 8);
}

static void preamble_decode(const uint8_t *p, uint32_t *index, uint64_t *len)
{
	uint32_t i;
	uint64_t l;

	memcpy(&i, p + 4, 4);
	memcpy(&l, p + 8, 8);
	*index = le32toh(i);
	*len = le64toh(l);
}

/* Stream bytes [off, off + n). */
static void stream_fill(const struct stream *s, uint64_t off, uint8_t *buf, size_t n)
{
	size_t i = 0;

	for (; i < n && off + i < s->head_len; i++)
		buf[i] = s->head[off + i];
	if (i < n)
		payload_fill(KIND_COUNTERS, 0, off + i - s->head_len, buf + i, n - i);
	if (s->corrupt_at >= 0 && (uint64_t)s->corrupt_at >= off && (uint64_t)s->corrupt_at < off + n)
		buf[(uint64_t)s->corrupt_at - off] ^= 0x5a;
}

/* ---- recv ------------------------------------------------------------------------------ */

enum expect { EXP_ANY, EXP_NONE, EXP_V1, EXP_V2 };
static const char *const expect_names[] = { "any", "none", "v1", "v2" };

struct recv_cfg {
	int lfd;
	uint64_t n;
	enum expect expect;
	atomic_uint_fast64_t claimed, ok, failed, v1, v2, none, invalid, bytes;
	atomic_bool stop;
	uint32_t *indexes;
	atomic_uint_fast64_t n_indexes;
};

/* One recv(): > 0 bytes, 0 at EOF, -1 with *error set. */
static ssize_t recv_some(int fd, uint8_t *p, size_t n, const char **error)
{
	for (;;) {
		ssize_t r = recv(fd, p, n, 0);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		*error = errno == EAGAIN || errno == EWOULDBLOCK ? "recv timed out" : errname(errno);
		return -1;
	}
}

static void recv_one(struct recv_cfg *cfg, uint8_t *head, uint8_t *rbuf, int fd, uint64_t i)
{
	struct sockaddr_storage peer, local, hs, hd;
	socklen_t plen = sizeof(peer), llen = sizeof(local);
	char peer_s[80], local_s[80], src_s[80] = "", dst_s[80] = "", why[256] = "";
	struct ppbpf_hdr h;
	struct check chk = { .first_bad = -1 };
	size_t head_len = 0, hlen = 0, pre_at = 0;
	int64_t leading = -1; /* where the preamble was found, if not where it belongs */
	uint64_t bytes = 0, expected = 0, total = 0;
	uint32_t index = 0;
	int rc = PPBPF_E_INCOMPLETE;
	bool eof = false, broken = false, found = false, header_ok = false, have_hdr = false, mapped = false, ok;
	const char *error = NULL, *pre_error = NULL, *version = "unknown";
	double t0 = now_s();
	struct jbuf j = { .n = 0 };

	memset(&peer, 0, sizeof(peer));
	memset(&local, 0, sizeof(local));
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) || getsockname(fd, (struct sockaddr *)&local, &llen))
		error = "getpeername/getsockname failed";
	ep_format((struct sockaddr *)&peer, peer_s, sizeof(peer_s));
	ep_format((struct sockaddr *)&local, local_s, sizeof(local_s));
	set_timeout(fd, timeout_s * 1000);

	/* The header: read until the parser has a verdict on the first bytes. */
	while (!error) {
		ssize_t r;

		rc = ppbpf_parse(head, (__u32)head_len, &h);
		if (rc != PPBPF_E_INCOMPLETE || eof || head_len == HEAD_CAP)
			break;
		r = recv_some(fd, head + head_len, HEAD_CAP - head_len, &error);
		if (r < 0) {
			broken = true;
			break;
		}
		if (r == 0)
			eof = true;
		head_len += (size_t)r;
	}
	if (error) {
		version = "unknown";
	} else if (rc > 0) {
		hlen = (size_t)rc;
		have_hdr = true;
		version = h.version == 1 ? "v1" : "v2";
	} else if (rc == PPBPF_E_NOT_PROXY) {
		version = "none";
	} else if (rc == PPBPF_E_INCOMPLETE) {
		version = head_len ? "incomplete" : "none";
		error = !head_len ? "the stream is empty" : eof ? "EOF inside the PROXY header"
								: "a PROXY header longer than the buffer";
	} else {
		version = "invalid";
		snprintf(why, sizeof(why), "invalid PROXY header: %s", status_name(rc));
		error = why;
	}

	/* The preamble, right after the header. */
	while (!error && !eof && head_len < hlen + PRE_LEN) {
		ssize_t r = recv_some(fd, head + head_len, HEAD_CAP - head_len, &error);

		broken = r < 0;
		if (r == 0)
			eof = true;
		if (r > 0)
			head_len += (size_t)r;
	}
	if (head_len >= hlen + PRE_LEN && preamble_at(head + hlen) && (!error || error == why)) {
		found = true;
		pre_at = hlen;
	} else if (head_len >= PRE_LEN) { /* anywhere else in the first bytes? (a corrupt or doubled header) */
		for (size_t k = 0; k + PRE_LEN <= head_len; k++)
			if (preamble_at(head + k)) {
				found = true;
				pre_at = k;
				leading = (int64_t)k;
				break;
			}
	}
	if (!error) { /* said after the header's own verdict, which comes first */
		struct ppbpf_hdr h2;

		if (have_hdr && head_len > hlen && ppbpf_parse(head + hlen, (__u32)(head_len - hlen), &h2) > 0)
			pre_error = "a second PROXY header follows the first";
		else if (!found)
			pre_error = "no preamble in the stream's first bytes";
		else if (leading >= 0)
			pre_error = "the preamble is not right after the header";
	}
	total = head_len;
	if (found) {
		preamble_decode(head + pre_at, &index, &expected);
		bytes = head_len - pre_at - PRE_LEN;
		payload_check(&chk, KIND_COUNTERS, 0, 0, head + pre_at + PRE_LEN, (size_t)bytes);
	}

	/* The payload, to EOF (also after an error in the header: its bytes are counted). */
	while (!eof && !broken) {
		const char *rerr = NULL;
		ssize_t r = recv_some(fd, rbuf, RBUF_SIZE, &rerr);

		if (r < 0) {
			if (!error || error == why)
				error = rerr;
			broken = true;
			break;
		}
		if (r == 0)
			break;
		total += (uint64_t)r;
		if (found)
			payload_check(&chk, KIND_COUNTERS, 0, bytes, rbuf, (size_t)r);
		bytes += (uint64_t)r;
	}
	if (!found)
		bytes = total > hlen ? total - hlen : 0;

	/* The header's verdict. */
	if (have_hdr) {
		int f1, f2, p1, p2;
		uint8_t a1[16], a2[16];
		bool want_v = cfg->expect == EXP_ANY || (cfg->expect == EXP_V1 && h.version == 1) ||
			      (cfg->expect == EXP_V2 && h.version == 2);
		bool tcp = h.command == PPBPF_CMD_PROXY && (h.family == PPBPF_FAM_TCP4 || h.family == PPBPF_FAM_TCP6);
		bool src_ok = false, dst_ok = false;

		if (tcp) {
			hdr_sockaddr(&h, true, &hs);
			hdr_sockaddr(&h, false, &hd);
			ep_format((struct sockaddr *)&hs, src_s, sizeof(src_s));
			ep_format((struct sockaddr *)&hd, dst_s, sizeof(dst_s));
			key_of(h.family == PPBPF_FAM_TCP4 ? 4 : 6, h.src_addr, h.src_port, &f1, a1, &p1);
			mapped = h.family == PPBPF_FAM_TCP6 && f1 == 4;
			ep_key((struct sockaddr *)&peer, &f2, a2, &p2);
			src_ok = f1 && f1 == f2 && p1 == p2 && !memcmp(a1, a2, 16);
			key_of(h.family == PPBPF_FAM_TCP4 ? 4 : 6, h.dst_addr, h.dst_port, &f1, a1, &p1);
			ep_key((struct sockaddr *)&local, &f2, a2, &p2);
			dst_ok = f1 && f1 == f2 && p1 == p2 && !memcmp(a1, a2, 16);
		}
		header_ok = want_v && tcp && src_ok && dst_ok;
		if (!header_ok && !error) {
			if (!want_v)
				snprintf(why, sizeof(why), "a %s header, expected %s", version, expect_names[cfg->expect]);
			else if (!tcp)
				snprintf(why, sizeof(why), "the header is %s %s, not PROXY TCP4/TCP6",
					 h.command == PPBPF_CMD_PROXY ? "PROXY" : "LOCAL", family_name(h.family));
			else if (!src_ok)
				snprintf(why, sizeof(why), "header source %s is not the peer %s", src_s, peer_s);
			else
				snprintf(why, sizeof(why), "header destination %s is not the local end %s", dst_s, local_s);
			error = why;
		}
	} else {
		header_ok = !strcmp(version, "none") && (cfg->expect == EXP_ANY || cfg->expect == EXP_NONE);
		if (!header_ok && !error && !strcmp(version, "none")) {
			snprintf(why, sizeof(why), "no PROXY header, expected %s", expect_names[cfg->expect]);
			error = why;
		}
	}
	if (!error)
		error = pre_error;
	ok = !error && header_ok && found && leading < 0 && bytes == expected && !chk.mismatches;
	if (!error && !ok)
		error = bytes != expected ? "payload length is not the preamble's" : "payload bytes differ";
	/* The verdict, unless the connection broke. */
	if (!broken)
		(void)send_all(fd, ok ? VERDICT_OK : VERDICT_BAD, VERDICT_LEN);
	close(fd);

	if (found)
		cfg->indexes[atomic_fetch_add(&cfg->n_indexes, 1)] = index;
	atomic_fetch_add(ok ? &cfg->ok : &cfg->failed, 1);
	atomic_fetch_add(!strcmp(version, "v1")	  ? &cfg->v1
			 : !strcmp(version, "v2")   ? &cfg->v2
			 : !strcmp(version, "none") ? &cfg->none
						    : &cfg->invalid,
			 1);
	atomic_fetch_add(&cfg->bytes, total);

	jadd(&j, "{\"i\":%" PRIu64 ",\"index\":%" PRId64, i, found ? (int64_t)index : -1);
	jstr(&j, "version", version);
	jstr(&j, "src", src_s[0] ? src_s : NULL); /* set only for a PROXY TCP4/TCP6 header */
	jstr(&j, "dst", dst_s[0] ? dst_s : NULL);
	jstr(&j, "peer", peer_s);
	jstr(&j, "local", local_s);
	jadd(&j, ",\"header_ok\":%s,\"header_len\":%zu", jbool(header_ok), hlen);
	jstr(&j, "family", have_hdr ? family_name(h.family) : NULL);
	if (mapped)
		jadd(&j, ",\"mapped\":true");
	if (have_hdr && h.version == 2)
		jadd(&j, ",\"tlv_len\":%u", h.tlv_len);
	jadd(&j, ",\"bytes\":%" PRIu64 ",\"expected\":%" PRId64 ",\"mismatches\":%" PRIu64, bytes,
	     found ? (int64_t)expected : -1, chk.mismatches);
	if (chk.mismatches) {
		jadd(&j, ",\"first_bad\":%" PRId64, chk.first_bad);
		jstr(&j, "got_hex", chk.got_hex);
		jstr(&j, "want_hex", chk.want_hex);
	}
	if (leading >= 0)
		jadd(&j, ",\"preamble_at\":%" PRId64, leading);
	jadd(&j, ",\"total\":%" PRIu64 ",\"ms\":%.1f", total, ms_since(t0));
	if (error)
		jstr(&j, "error", error);
	jadd(&j, ",\"ok\":%s}", jbool(ok));
	emit(j.s);
}

static void *recv_thread(void *arg)
{
	struct recv_cfg *cfg = arg;
	uint8_t *head = malloc(HEAD_CAP), *rbuf = malloc(RBUF_SIZE);

	if (!head || !rbuf)
		abort();
	while (!atomic_load(&cfg->stop)) {
		uint64_t i = atomic_fetch_add(&cfg->claimed, 1);
		int fd;

		if (i >= cfg->n)
			break;
		do
			fd = accept4(cfg->lfd, NULL, NULL, SOCK_CLOEXEC);
		while (fd < 0 && errno == EINTR);
		if (fd < 0) {
			emit_accept_failed(i, errno == EAGAIN ? "accept timed out" : errname(errno));
			atomic_store(&cfg->stop, true);
			break;
		}
		recv_one(cfg, head, rbuf, fd, i);
	}
	free(head);
	free(rbuf);
	return NULL;
}

static int cmd_recv(int argc, char **argv)
{
	static struct recv_cfg cfg;
	struct endpoint ep;
	uint64_t threads = 1, n, okc, bad, ni, dup = 0, hold_ms = 0;
	const char *pos[3];
	int np = 0, one = 1, filler = -1;
	char where[80];
	double t0;
	struct jbuf j = { .n = 0 };

	cfg.expect = EXP_ANY;
	for (int a = 0; a < argc; a++) {
		const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (!strcmp(o, "--expect") && v) {
			int k = lookup(v, expect_names, 4);

			if (k < 0)
				die_usage("recv --expect: '%s' is not v1, v2, none or any", v);
			cfg.expect = (enum expect)k;
			a++;
		} else if (!strcmp(o, "--threads") && v) {
			threads = need_u64(o, v, 1024);
			a++;
		} else if (!strcmp(o, "--syn-hold-ms") && v) {
			hold_ms = need_u64(o, v, 600000);
			a++;
		} else if (!strcmp(o, "--timeout") && v) {
			timeout_s = (int)need_u64(o, v, 3600);
			a++;
		} else if (o[0] == '-' && o[1] == '-') {
			die_usage("recv: unknown option %s, or its value is missing", o);
		} else if (np < 3) {
			pos[np++] = o;
		} else {
			die_usage("recv: too many arguments");
		}
	}
	if (np != 3)
		die_usage("recv ADDR PORT N");
	if (!endpoint_from(pos[0], pos[1], &ep))
		die_usage("recv: '%s' '%s' is not a numeric address and port", pos[0], pos[1]);
	n = need_u64("N", pos[2], 100000000);
	if (!threads || !timeout_s)
		die_usage("recv: --threads and --timeout must be at least 1");
	cfg.n = n;
	cfg.indexes = calloc(n + 1, sizeof(*cfg.indexes));
	cfg.lfd = socket(ep.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!cfg.indexes || cfg.lfd < 0) {
		perror("send_test recv: socket");
		return 2;
	}
	setsockopt(cfg.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Lets the `fastopen` pattern carry data in its SYN when the sysctl allows it. */
	{
		int qlen = 1024;

		setsockopt(cfg.lfd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen));
	}
	if (bind(cfg.lfd, (struct sockaddr *)&ep.ss, ep.len) || listen(cfg.lfd, hold_ms ? 0 : 1024)) {
		fprintf(stderr, "send_test recv: bind/listen %s %s: %s\n", pos[0], pos[1], strerror(errno));
		return 2;
	}
	set_timeout(cfg.lfd, timeout_s * 1000); /* accept() waits at most this long */
	ep.len = sizeof(ep.ss);
	getsockname(cfg.lfd, (struct sockaddr *)&ep.ss, &ep.len);
	if (hold_ms) {
		/*
		 * --syn-hold-ms: a connection of our own fills the accept queue (backlog
		 * 0), so the clients' SYNs are dropped (ListenOverflows) and they stay in
		 * SYN_SENT until a retransmission after the hold (the first one is ~1 s
		 * after connect). Then the backlog is 1024 and the filler goes.
		 */
		struct endpoint self = ep;

		if (self.ss.ss_family == AF_INET && ((struct sockaddr_in *)&self.ss)->sin_addr.s_addr == htonl(INADDR_ANY))
			((struct sockaddr_in *)&self.ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (self.ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&self.ss)->sin6_addr))
			((struct sockaddr_in6 *)&self.ss)->sin6_addr = in6addr_loopback;
		filler = socket(self.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		set_timeout(filler, timeout_s * 1000);
		if (filler < 0 || connect(filler, (struct sockaddr *)&self.ss, self.len)) {
			fprintf(stderr, "send_test recv: --syn-hold-ms: connecting the filler: %s\n", strerror(errno));
			return 2;
		}
	}
	ep_format((struct sockaddr *)&ep.ss, where, sizeof(where));
	jadd(&j, "{\"listening\":\"%s\",\"port\":%d}", where, ep_port((struct sockaddr *)&ep.ss));
	emit(j.s);
	if (hold_ms) {
		int fd;

		sleep_ms((long)hold_ms);
		if (listen(cfg.lfd, 1024) || (fd = accept4(cfg.lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			fprintf(stderr, "send_test recv: --syn-hold-ms: after the hold: %s\n", strerror(errno));
			return 2;
		}
		close(fd); /* the filler's other end: not one of the N */
		close(filler);
	}

	t0 = now_s();
	if (run_threads(threads, n, recv_thread, &cfg, "send_test recv"))
		return 2;
	close(cfg.lfd);

	okc = atomic_load(&cfg.ok);
	bad = atomic_load(&cfg.failed);
	ni = atomic_load(&cfg.n_indexes);
	qsort(cfg.indexes, ni, sizeof(*cfg.indexes), cmp_u32);
	for (uint64_t k = 1; k < ni; k++)
		dup += cfg.indexes[k] == cfg.indexes[k - 1];
	j.n = 0;
	jadd(&j, "{\"summary\":\"recv\",\"expect\":\"%s\",\"conns\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64
		 ",\"missing\":%" PRIu64,
	     expect_names[cfg.expect], n, okc, bad, n - okc - bad);
	jadd(&j, ",\"v1\":%" PRIu64 ",\"v2\":%" PRIu64 ",\"none\":%" PRIu64 ",\"invalid\":%" PRIu64,
	     (uint64_t)atomic_load(&cfg.v1), (uint64_t)atomic_load(&cfg.v2), (uint64_t)atomic_load(&cfg.none),
	     (uint64_t)atomic_load(&cfg.invalid));
	jadd(&j, ",\"dup_index\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.2f}", dup,
	     (uint64_t)atomic_load(&cfg.bytes), now_s() - t0);
	emit(j.s);
	free(cfg.indexes);
	return okc == n ? 0 : 1; /* dup_index is for the script to judge (send's --index defaults to 0) */
}

/* ---- send ------------------------------------------------------------------------------ */

enum pattern { P_WRITE, P_WRITEV, P_SENDMSG, P_MORE, P_CORK, P_SENDFILE, P_SPLICE, P_NONBLOCK, P_FIRST_SMALL,
	       P_FASTOPEN, P_COUNT };
static const char *const pat_names[P_COUNT] = { "write",    "writev", "sendmsg",  "more",        "cork",
						"sendfile", "splice", "nonblock", "first-small", "fastopen" };
/* `many` draws from the first nine unless --patterns says otherwise (fastopen needs sysctls). */
#define P_DEFAULT_COUNT P_FASTOPEN

struct send_cfg {
	struct endpoint dst;
	enum pattern pat;
	uint64_t bytes;
	uint32_t index;
	uint64_t seed;
	int self_hdr; /* 0 none, 1 v1, 2 v2 */
	bool nb;      /* non-blocking connect, first call before it completes */
	bool no_verdict;
	int64_t corrupt_at;
};

/* One client connection while it runs. */
struct sender {
	const struct send_cfg *cfg;
	int fd;
	struct stream st;
	uint64_t off; /* stream bytes the socket took */
	uint64_t rng;
	uint8_t *scratch;
	uint64_t calls, tries, eagain, partial;
	bool nb, established;
	/* non-blocking connect: what connect() said, and what the first call met */
	const char *connect_res, *first_try, *state_first;
	uint64_t early_tries, first_bytes;
	const char *error;
	char errbuf[160];
};

static const char *tcp_state(int fd)
{
	static const char *const names[] = { "?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
					     "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING" };
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return "?";
	return ti.tcpi_state < sizeof(names) / sizeof(names[0]) ? names[ti.tcpi_state] : "?";
}

static void set_error(struct sender *s, const char *what, int e)
{
	if (s->error)
		return;
	if (e)
		snprintf(s->errbuf, sizeof(s->errbuf), "%s: %s", what, errname(e));
	else
		snprintf(s->errbuf, sizeof(s->errbuf), "%s", what);
	s->error = s->errbuf;
}

/* Non-blocking: wait until the socket is writable (and connected). False with s->error set. */
static bool wait_writable(struct sender *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLOUT };
	int r, soerr = 0;
	socklen_t sl = sizeof(soerr);

	do
		r = poll(&p, 1, timeout_s * 1000);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		set_error(s, "poll", errno);
		return false;
	}
	if (r == 0) {
		set_error(s, "poll(POLLOUT) timed out", 0);
		return false;
	}
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr) {
		set_error(s, "connect", soerr);
		return false;
	}
	if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
		set_error(s, "poll: the socket failed", 0);
		return false;
	}
	s->established = true;
	return true;
}

/*
 * After one write call that offered `asked` bytes: r and its errno. True to go
 * on (bytes taken, or wait and retry), false with s->error set.
 */
static bool progress(struct sender *s, const char *call, ssize_t r, int e, size_t asked)
{
	if (!s->tries++) { /* the first call: what it met (the state was read just before it) */
		s->first_try = r > 0 ? "ok" : errname(e);
		s->first_bytes = r > 0 ? (uint64_t)r : 0;
	}
	if (r > 0) {
		s->off += (uint64_t)r;
		s->calls++;
		s->partial += (size_t)r < asked;
		return true;
	}
	if (r == 0) {
		set_error(s, "a write call took 0 bytes", 0);
		return false;
	}
	if (e == EINTR)
		return true;
	if (s->nb && (e == EAGAIN || e == EWOULDBLOCK || (!s->established && e == ENOTCONN))) {
		s->eagain++;
		if (!strcmp(tcp_state(s->fd), "SYN_SENT"))
			s->early_tries++;
		return wait_writable(s);
	}
	if (e == EAGAIN || e == EWOULDBLOCK)
		set_error(s, call, ETIMEDOUT); /* SO_SNDTIMEO */
	else
		set_error(s, call, e);
	return false;
}

static uint64_t left(const struct sender *s)
{
	return s->st.total - s->off;
}

static size_t cap(size_t n, uint64_t l)
{
	if (n > l)
		n = (size_t)l;
	return n > SCRATCH_SIZE ? SCRATCH_SIZE : n;
}

/* write, more, cork, nonblock, first-small, fastopen: one buffer per call. */
static void pat_simple(struct sender *s, enum pattern p)
{
	while (s->off < s->st.total && !s->error) {
		size_t n;
		ssize_t r;
		int e;

		if (p == P_FIRST_SMALL)
			n = s->calls == 0 ? 1 : (256u << 10) + (size_t)(rng_next(&s->rng) % ((768u << 10) + 1));
		else if (p == P_MORE || p == P_CORK || p == P_FASTOPEN)
			n = rand_size(&s->rng, 64u << 10);
		else
			n = rand_size(&s->rng, 256u << 10);
		n = cap(n, left(s));
		stream_fill(&s->st, s->off, s->scratch, n);
		if (p == P_MORE)
			r = send(s->fd, s->scratch, n, MSG_NOSIGNAL | (n < left(s) ? MSG_MORE : 0));
		else
			r = write(s->fd, s->scratch, n);
		e = r < 0 ? errno : 0;
		if (!progress(s, p == P_MORE ? "send" : "write", r, e, n))
			break;
	}
}

/* writev (2..64 iovecs of up to 16 KiB) and sendmsg (16..128 iovecs of up to 8 KiB, some empty). */
static void pat_vec(struct sender *s, bool use_sendmsg)
{
	struct iovec iov[MAX_IOV];

	while (s->off < s->st.total && !s->error) {
		int cnt = use_sendmsg ? 16 + (int)(rng_next(&s->rng) % 113) : 2 + (int)(rng_next(&s->rng) % 63);
		size_t segmax = use_sendmsg ? 8192 : 16384, pos = 0, sum = 0, rem = cap(SCRATCH_SIZE, left(s));
		ssize_t r;
		int e;

		for (int k = 0; k < cnt; k++) {
			size_t sz = use_sendmsg && rng_next(&s->rng) % 16 == 0 ? 0 : rand_size(&s->rng, segmax);

			if (sz > rem - sum)
				sz = rem - sum;
			if (!sum && !sz && k == cnt - 1)
				sz = 1; /* at least one byte per call */
			if (pos + sz + IOV_GAP > SCRATCH_SIZE)
				sz = 0;
			iov[k].iov_base = s->scratch + pos;
			iov[k].iov_len = sz;
			stream_fill(&s->st, s->off + sum, s->scratch + pos, sz);
			memset(s->scratch + pos + sz, 0xee, IOV_GAP); /* bytes no iovec names */
			pos += sz + IOV_GAP;
			sum += sz;
		}
		if (use_sendmsg) {
			struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };

			r = sendmsg(s->fd, &m, MSG_NOSIGNAL);
		} else {
			r = writev(s->fd, iov, cnt);
		}
		e = r < 0 ? errno : 0;
		if (!progress(s, use_sendmsg ? "sendmsg" : "writev", r, e, sum))
			break;
	}
}

/*
 * sendfile: the stream goes to an unlinked temp file ($TMPDIR or /tmp) at its
 * own offset, and from there with sendfile(2); the file's pages are never
 * rewritten (the socket may still hold them), and those PUNCH_BEHIND behind
 * are punched out, so a 2 GiB stream needs ~64 MiB of disk.
 */
static void pat_sendfile(struct sender *s)
{
	const char *dir = getenv("TMPDIR");
	char path[512];
	uint64_t punched = 0;
	int file;

	snprintf(path, sizeof(path), "%s/send_test.XXXXXX", dir && *dir ? dir : "/tmp");
	file = mkostemp(path, O_CLOEXEC);
	if (file < 0) {
		set_error(s, "mkstemp", errno);
		return;
	}
	unlink(path);
	while (s->off < s->st.total && !s->error) {
		size_t n = cap(rand_size(&s->rng, 1u << 20), left(s));
		uint64_t end = s->off + n;

		stream_fill(&s->st, s->off, s->scratch, n);
		for (size_t w = 0; w < n;) {
			ssize_t r = pwrite(file, s->scratch + w, n - w, (off_t)(s->off + w));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				set_error(s, "pwrite to the temp file", r < 0 ? errno : EIO);
				break;
			}
			w += (size_t)r;
		}
		while (s->off < end && !s->error) {
			off_t at = (off_t)s->off;
			size_t want = (size_t)(end - s->off);
			ssize_t r = sendfile(s->fd, file, &at, want);
			int e = r < 0 ? errno : 0;

			if (!progress(s, "sendfile", r, e, want))
				break;
		}
		if (s->off > punched + 2 * PUNCH_BEHIND) {
			uint64_t to = (s->off - PUNCH_BEHIND) & ~4095ull;

			if (fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)punched, (off_t)(to - punched)) == 0)
				punched = to;
		}
	}
	close(file);
}

/*
 * splice: the stream is written into a pipe (pieces of random sizes), then
 * spliced to the socket. The pipe's write end is non-blocking: pieces that do
 * not fill their pages use more slots than their bytes need, so a fill stops
 * where the pipe is full (EAGAIN) rather than blocking on ourselves.
 */
static void pat_splice(struct sender *s)
{
	int p[2], pipe_cap;
	uint64_t filled = s->off;

	if (pipe2(p, O_CLOEXEC)) {
		set_error(s, "pipe2", errno);
		return;
	}
	if (fcntl(p[1], F_SETFL, O_NONBLOCK)) {
		set_error(s, "fcntl(pipe, O_NONBLOCK)", errno);
		close(p[0]);
		close(p[1]);
		return;
	}
	pipe_cap = fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	if (pipe_cap <= 0)
		pipe_cap = fcntl(p[1], F_GETPIPE_SZ);
	if (pipe_cap <= 0)
		pipe_cap = 65536;
	while (s->off < s->st.total && !s->error) {
		size_t n = cap(rand_size(&s->rng, (size_t)pipe_cap), s->st.total - filled);

		stream_fill(&s->st, filled, s->scratch, n);
		for (size_t w = 0; w < n;) { /* the pipe is empty here */
			size_t piece = rand_size(&s->rng, n - w);
			ssize_t r = write(p[1], s->scratch + w, piece);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EAGAIN && w) /* full: splice what it holds */
				break;
			if (r <= 0) {
				set_error(s, "write to the pipe", r < 0 ? errno : EIO);
				break;
			}
			w += (size_t)r;
			filled += (uint64_t)r;
		}
		while (s->off < filled && !s->error) {
			size_t want = (size_t)(filled - s->off);
			unsigned int fl = SPLICE_F_MOVE | (filled < s->st.total ? SPLICE_F_MORE : 0) |
					  (s->nb ? SPLICE_F_NONBLOCK : 0);
			ssize_t r = splice(p[0], NULL, s->fd, NULL, want, fl);
			int e = r < 0 ? errno : 0;

			if (!progress(s, "splice", r, e, want))
				break;
		}
	}
	close(p[0]);
	close(p[1]);
}

/* Result of one client connection, as its JSON line. */
struct send_result {
	bool ok;
	struct jbuf j;
};

static void run_send(const struct send_cfg *c, struct send_result *res, uint8_t *scratch)
{
	struct sender s = { .cfg = c, .fd = -1, .scratch = scratch, .rng = mix64(mix64(c->seed) ^ c->index) };
	struct sockaddr_storage self;
	socklen_t slen = sizeof(self);
	char local_s[80] = "", dst_s[80], reply[VERDICT_LEN + 1] = "";
	size_t reply_len = 0;
	uint64_t reply_total = 0;
	const char *verdict = NULL;
	double t0 = now_s();
	int one = 1, r;

	res->ok = false;
	res->j.n = 0;
	s.nb = c->nb || c->pat == P_NONBLOCK;
	s.st.corrupt_at = c->corrupt_at;
	ep_format((const struct sockaddr *)&c->dst.ss, dst_s, sizeof(dst_s));
	s.fd = socket(c->dst.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (s.nb ? SOCK_NONBLOCK : 0), 0);
	if (s.fd < 0) {
		set_error(&s, "socket", errno);
		goto out;
	}
	set_timeout(s.fd, timeout_s * 1000); /* connect() too waits at most SO_SNDTIMEO */
	setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->pat == P_FASTOPEN && setsockopt(s.fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one))) {
		set_error(&s, "setsockopt(TCP_FASTOPEN_CONNECT)", errno);
		goto out;
	}
	if (c->pat == P_CORK && setsockopt(s.fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one))) {
		set_error(&s, "setsockopt(TCP_CORK, 1)", errno);
		goto out;
	}
	do
		r = connect(s.fd, (const struct sockaddr *)&c->dst.ss, c->dst.len);
	while (r && errno == EINTR && !s.nb);
	if (r && !(s.nb && errno == EINPROGRESS)) {
		set_error(&s, "connect", errno == EAGAIN ? ETIMEDOUT : errno);
		goto out;
	}
	s.connect_res = r ? "EINPROGRESS" : "0";
	s.established = !s.nb && c->pat != P_FASTOPEN;
	if (getsockname(s.fd, (struct sockaddr *)&self, &slen)) {
		set_error(&s, "getsockname", errno);
		goto out;
	}
	ep_format((struct sockaddr *)&self, local_s, sizeof(local_s));
	/* The self header names the address connected to: getpeername() fails until the handshake ends. */
	if (c->self_hdr) {
		s.st.hdr_len = build_header(s.st.head, c->self_hdr, (struct sockaddr *)&self,
					    (const struct sockaddr *)&c->dst.ss);
		if (!s.st.hdr_len) {
			set_error(&s, "the socket's two ends are of different families", 0);
			goto out;
		}
	}
	preamble_encode(s.st.head + s.st.hdr_len, c->index, c->bytes);
	s.st.head_len = s.st.hdr_len + PRE_LEN;
	s.st.total = s.st.head_len + c->bytes;
	s.state_first = tcp_state(s.fd); /* just before the first call */

	switch (c->pat) {
	case P_WRITEV:
		pat_vec(&s, false);
		break;
	case P_SENDMSG:
		pat_vec(&s, true);
		break;
	case P_SENDFILE:
		pat_sendfile(&s);
		break;
	case P_SPLICE:
		pat_splice(&s);
		break;
	default:
		pat_simple(&s, c->pat);
		break;
	}
	if (s.error)
		goto out;
	if (c->pat == P_CORK) {
		int zero = 0;

		if (setsockopt(s.fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero))) {
			set_error(&s, "setsockopt(TCP_CORK, 0)", errno);
			goto out;
		}
	}
	if (shutdown(s.fd, SHUT_WR)) {
		set_error(&s, "shutdown(SHUT_WR)", errno);
		goto out;
	}
	if (s.nb) { /* back to blocking: SO_RCVTIMEO bounds the reads */
		int fl = fcntl(s.fd, F_GETFL);

		if (fl < 0 || fcntl(s.fd, F_SETFL, fl & ~O_NONBLOCK)) {
			set_error(&s, "fcntl(O_NONBLOCK off)", errno);
			goto out;
		}
	}
	for (;;) { /* to the server's EOF */
		char buf[512];
		ssize_t n = recv(s.fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_error(&s, "waiting for the server's EOF", errno == EAGAIN ? ETIMEDOUT : errno);
			break;
		}
		if (n == 0)
			break;
		for (ssize_t k = 0; k < n && reply_len < VERDICT_LEN; k++)
			reply[reply_len++] = buf[k];
		reply_total += (uint64_t)n;
	}
	if (s.error)
		goto out;
	if (reply_total == VERDICT_LEN && !memcmp(reply, VERDICT_OK, VERDICT_LEN))
		verdict = "OK";
	else if (reply_total == VERDICT_LEN && !memcmp(reply, VERDICT_BAD, VERDICT_LEN))
		verdict = "NG";
	if (c->no_verdict)
		res->ok = !verdict || !strcmp(verdict, "OK");
	else if (!verdict)
		set_error(&s, reply_total ? "the server's reply is not a verdict" : "EOF without a verdict", 0);
	else
		res->ok = !strcmp(verdict, "OK");
out:
	if (s.fd >= 0)
		close(s.fd);
	if (s.error)
		res->ok = false;
	jadd(&res->j, "{\"index\":%" PRIu32 ",\"pattern\":\"%s\",\"bytes\":%" PRIu64, c->index, pat_names[c->pat],
	     c->bytes);
	jstr(&res->j, "self_header", c->self_hdr == 1 ? "v1" : c->self_hdr == 2 ? "v2" : NULL);
	jadd(&res->j, ",\"nb_connect\":%s,\"seed\":%" PRIu64, jbool(s.nb), c->seed);
	jstr(&res->j, "local", local_s[0] ? local_s : NULL);
	jstr(&res->j, "dst", dst_s);
	jadd(&res->j, ",\"sent\":%" PRIu64 ",\"total\":%" PRIu64 ",\"calls\":%" PRIu64 ",\"partial\":%" PRIu64, s.off,
	     s.st.total, s.calls, s.partial);
	if (s.nb || c->pat == P_FASTOPEN) {
		jstr(&res->j, "connect", s.connect_res);
		jstr(&res->j, "state_at_first_try", s.state_first);
		jstr(&res->j, "first_try", s.first_try);
		jadd(&res->j, ",\"first_try_bytes\":%" PRIu64 ",\"early_tries\":%" PRIu64 ",\"eagain\":%" PRIu64,
		     s.first_bytes, s.early_tries, s.eagain);
	}
	if (c->corrupt_at >= 0)
		jadd(&res->j, ",\"corrupt_at\":%" PRId64, c->corrupt_at);
	jstr(&res->j, "verdict", verdict);
	jadd(&res->j, ",\"ms\":%.1f", ms_since(t0));
	if (s.error)
		jstr(&res->j, "error", s.error);
	jadd(&res->j, ",\"ok\":%s}", jbool(res->ok));
}

static int self_header_opt(const char *v)
{
	if (!strcmp(v, "v1"))
		return 1;
	if (!strcmp(v, "v2"))
		return 2;
	if (!strcmp(v, "none"))
		return 0;
	if (!strcmp(v, "mix"))
		return 3;
	return -1;
}

static int cmd_send(int argc, char **argv)
{
	struct send_cfg c = { .pat = P_WRITE, .corrupt_at = -1 };
	struct send_result res;
	const char *pos[2];
	bool have_bytes = false;
	int np = 0;
	uint8_t *scratch = malloc(SCRATCH_SIZE);

	if (!scratch)
		abort();
	for (int a = 0; a < argc; a++) {
		const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (!strcmp(o, "--nb-connect")) {
			c.nb = true;
		} else if (!strcmp(o, "--no-verdict")) {
			c.no_verdict = true;
		} else if (!strcmp(o, "--bytes") && v) {
			c.bytes = need_size(o, v, 1ull << 44);
			have_bytes = true;
			a++;
		} else if (!strcmp(o, "--pattern") && v) {
			int k = lookup(v, pat_names, P_COUNT);

			if (k < 0)
				die_usage("send --pattern: '%s' is not a pattern", v);
			c.pat = (enum pattern)k;
			a++;
		} else if (!strcmp(o, "--index") && v) {
			c.index = (uint32_t)need_u64(o, v, UINT32_MAX);
			a++;
		} else if (!strcmp(o, "--seed") && v) {
			c.seed = need_u64(o, v, UINT64_MAX);
			a++;
		} else if (!strcmp(o, "--self-header") && v) {
			c.self_hdr = self_header_opt(v);
			if (c.self_hdr < 0 || c.self_hdr > 2)
				die_usage("send --self-header: '%s' is not v1, v2 or none", v);
			a++;
		} else if (!strcmp(o, "--corrupt-at") && v) {
			c.corrupt_at = (int64_t)need_u64(o, v, INT64_MAX);
			a++;
		} else if (!strcmp(o, "--timeout") && v) {
			timeout_s = (int)need_u64(o, v, 3600);
			a++;
		} else if (o[0] == '-' && o[1] == '-') {
			die_usage("send: unknown option %s, or its value is missing", o);
		} else if (np < 2) {
			pos[np++] = o;
		} else {
			die_usage("send: too many arguments");
		}
	}
	if (np != 2 || !have_bytes)
		die_usage("send ADDR PORT --bytes B");
	if (!endpoint_from(pos[0], pos[1], &c.dst))
		die_usage("send: '%s' '%s' is not a numeric address and port", pos[0], pos[1]);
	if (!timeout_s)
		die_usage("--timeout must be at least 1");
	run_send(&c, &res, scratch);
	emit(res.j.s);
	free(scratch);
	return res.ok ? 0 : 1;
}

/* ---- many ------------------------------------------------------------------------------ */

enum nb_mode { NB_MIX, NB_NEVER, NB_ALWAYS };

struct many_cfg {
	struct send_cfg base;
	uint64_t n, bytes_max;
	int pats[P_COUNT], n_pats;
	int self_mode; /* 0..2, or 3: mix */
	enum nb_mode nb;
	bool each;
	atomic_uint_fast64_t next, ok, failed;
	atomic_uint_fast64_t pat_ok[P_COUNT], pat_failed[P_COUNT];
	pthread_mutex_t lock;
	int64_t first_fail_i;
	char first_fail[4096];
};

/* Connection i of a batch (the deterministic mapping documented in --help). */
static void many_conn(const struct many_cfg *m, uint64_t i, struct send_cfg *c)
{
	uint64_t r = mix64(mix64(m->base.seed ^ 0x5eedull) + i);
	uint64_t sel = mix64(r + 1) % 16;

	*c = m->base;
	c->index = (uint32_t)i;
	c->pat = (enum pattern)m->pats[r % (uint64_t)m->n_pats];
	if (sel == 0)
		c->bytes = 0;
	else if (sel == 1)
		c->bytes = 1 + mix64(r + 2) % (m->bytes_max < 64 ? m->bytes_max + 1 : 64);
	else
		c->bytes = m->bytes_max ? mix64(r + 3) % (m->bytes_max + 1) : 0;
	if (sel >= 2 && sel < 10 && m->bytes_max) { /* half of them log-uniform, so small streams are common */
		uint64_t rr = r + 4;

		c->bytes = rand_size(&rr, (size_t)m->bytes_max);
	}
	c->nb = m->nb == NB_ALWAYS || (m->nb == NB_MIX && mix64(r + 5) % 4 == 0);
	c->self_hdr = m->self_mode == 3 ? (int)(i % 3) : m->self_mode;
}

static void *many_thread(void *arg)
{
	struct many_cfg *m = arg;
	uint8_t *scratch = malloc(SCRATCH_SIZE);
	struct send_result res;

	if (!scratch)
		abort();
	for (;;) {
		uint64_t i = atomic_fetch_add(&m->next, 1);
		struct send_cfg c;

		if (i >= m->n)
			break;
		many_conn(m, i, &c);
		run_send(&c, &res, scratch);
		atomic_fetch_add(res.ok ? &m->ok : &m->failed, 1);
		atomic_fetch_add(res.ok ? &m->pat_ok[c.pat] : &m->pat_failed[c.pat], 1);
		if (m->each || !res.ok)
			emit(res.j.s);
		if (!res.ok) {
			pthread_mutex_lock(&m->lock);
			if (m->first_fail_i < 0 || (int64_t)i < m->first_fail_i) {
				m->first_fail_i = (int64_t)i;
				snprintf(m->first_fail, sizeof(m->first_fail), "%s", res.j.s);
			}
			pthread_mutex_unlock(&m->lock);
		}
	}
	free(scratch);
	return NULL;
}

static int cmd_many(int argc, char **argv)
{
	static struct many_cfg m = { .lock = PTHREAD_MUTEX_INITIALIZER, .first_fail_i = -1 };
	const char *pos[3];
	uint64_t conc = CONCURRENCY;
	int np = 0;
	double t0;
	bool first_pat = true;
	struct jbuf j = { .n = 0 };

	m.base = (struct send_cfg){ .corrupt_at = -1 };
	m.bytes_max = BYTES_MAX_DEFAULT;
	m.n_pats = P_DEFAULT_COUNT;
	for (int k = 0; k < P_DEFAULT_COUNT; k++)
		m.pats[k] = k;
	for (int a = 0; a < argc; a++) {
		const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (!strcmp(o, "--each")) {
			m.each = true;
		} else if (!strcmp(o, "--no-verdict")) {
			m.base.no_verdict = true;
		} else if (!strcmp(o, "--concurrency") && v) {
			conc = need_u64(o, v, 1024);
			a++;
		} else if (!strcmp(o, "--seed") && v) {
			m.base.seed = need_u64(o, v, UINT64_MAX);
			a++;
		} else if (!strcmp(o, "--bytes-max") && v) {
			m.bytes_max = need_size(o, v, 1ull << 40);
			a++;
		} else if (!strcmp(o, "--self-header") && v) {
			m.self_mode = self_header_opt(v);
			if (m.self_mode < 0)
				die_usage("many --self-header: '%s' is not v1, v2, none or mix", v);
			a++;
		} else if (!strcmp(o, "--nb-connect") && v) {
			if (!strcmp(v, "mix"))
				m.nb = NB_MIX;
			else if (!strcmp(v, "never"))
				m.nb = NB_NEVER;
			else if (!strcmp(v, "always"))
				m.nb = NB_ALWAYS;
			else
				die_usage("many --nb-connect: '%s' is not mix, never or always", v);
			a++;
		} else if (!strcmp(o, "--patterns") && v) {
			char buf[256];

			snprintf(buf, sizeof(buf), "%s", v);
			m.n_pats = 0;
			for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				int k = lookup(t, pat_names, P_COUNT);

				if (k < 0 || m.n_pats >= P_COUNT)
					die_usage("many --patterns: '%s' is not a pattern, or the list is too long", t);
				m.pats[m.n_pats++] = k;
			}
			if (!m.n_pats)
				die_usage("many --patterns: empty list");
			a++;
		} else if (!strcmp(o, "--timeout") && v) {
			timeout_s = (int)need_u64(o, v, 3600);
			a++;
		} else if (o[0] == '-' && o[1] == '-') {
			die_usage("many: unknown option %s, or its value is missing", o);
		} else if (np < 3) {
			pos[np++] = o;
		} else {
			die_usage("many: too many arguments");
		}
	}
	if (np != 3)
		die_usage("many ADDR PORT N");
	if (!endpoint_from(pos[0], pos[1], &m.base.dst))
		die_usage("many: '%s' '%s' is not a numeric address and port", pos[0], pos[1]);
	m.n = need_u64("N", pos[2], UINT32_MAX);
	if (!conc || !timeout_s)
		die_usage("many: --concurrency and --timeout must be at least 1");
	t0 = now_s();
	if (run_threads(conc, m.n, many_thread, &m, "send_test many"))
		return 2;
	jadd(&j, "{\"summary\":\"many\",\"conns\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"seconds\":%.2f",
	     m.n, (uint64_t)atomic_load(&m.ok), (uint64_t)atomic_load(&m.failed), now_s() - t0);
	jadd(&j, ",\"by_pattern\":{");
	for (int k = 0; k < P_COUNT; k++) {
		uint64_t okc = atomic_load(&m.pat_ok[k]), bad = atomic_load(&m.pat_failed[k]);

		if (!okc && !bad)
			continue;
		jadd(&j, "%s\"%s\":[%" PRIu64 ",%" PRIu64 "]", first_pat ? "" : ",", pat_names[k], okc, bad);
		first_pat = false;
	}
	jadd(&j, "},\"first_failure\":%s}", m.first_fail_i >= 0 ? m.first_fail : "null");
	emit(j.s);
	return atomic_load(&m.ok) == m.n ? 0 : 1;
}

/* ---- selftest ---------------------------------------------------------------------------- */

static int cmd_selftest(int argc, char **argv)
{
	struct endpoint a4, b4, a6, b6, m6;
	uint8_t h[SELF_HDR_CAP], buf[4096];
	struct ppbpf_hdr ph;
	struct stream st = { .corrupt_at = -1 };
	struct check c = { .first_bad = -1 };
	uint64_t rng = 1;
	size_t n;

	(void)argc;
	(void)argv;
	CHECK(endpoint_from("192.0.2.1", "4000", &a4) && endpoint_from("198.51.100.2", "443", &b4), "v4 endpoints");
	CHECK(endpoint_from("2001:db8::1", "4000", &a6) && endpoint_from("[2001:db8::2]", "443", &b6), "v6 endpoints");
	CHECK(endpoint_from("::ffff:192.0.2.9", "5", &m6), "v4-mapped endpoint");
	n = build_header(h, 1, (struct sockaddr *)&a4.ss, (struct sockaddr *)&b4.ss);
	CHECK(n == strlen("PROXY TCP4 192.0.2.1 198.51.100.2 4000 443\r\n") &&
		      !memcmp(h, "PROXY TCP4 192.0.2.1 198.51.100.2 4000 443\r\n", n),
	      "v1 TCP4 text");
	for (int v = 1; v <= 2; v++) {
		const struct endpoint *pairs[3][2] = { { &a4, &b4 }, { &a6, &b6 }, { &m6, &b4 } };

		for (int p = 0; p < 3; p++) {
			int fam = p == 1 ? PPBPF_FAM_TCP6 : PPBPF_FAM_TCP4;
			struct sockaddr_storage s, d;
			int f1, f2, p1, p2;
			uint8_t x1[16], x2[16];

			n = build_header(h, v, (const struct sockaddr *)&pairs[p][0]->ss,
					 (const struct sockaddr *)&pairs[p][1]->ss);
			CHECK(n > 0 && ppbpf_parse(h, (__u32)n, &ph) == (int)n, "v%d pair %d parses whole", v, p);
			CHECK(ph.version == v && ph.command == PPBPF_CMD_PROXY && ph.family == fam, "v%d pair %d fields", v, p);
			hdr_sockaddr(&ph, true, &s);
			hdr_sockaddr(&ph, false, &d);
			ep_key((struct sockaddr *)&s, &f1, x1, &p1);
			ep_key((const struct sockaddr *)&pairs[p][0]->ss, &f2, x2, &p2);
			CHECK(f1 == f2 && p1 == p2 && !memcmp(x1, x2, 16), "v%d pair %d source", v, p);
			ep_key((struct sockaddr *)&d, &f1, x1, &p1);
			ep_key((const struct sockaddr *)&pairs[p][1]->ss, &f2, x2, &p2);
			CHECK(f1 == f2 && p1 == p2 && !memcmp(x1, x2, 16), "v%d pair %d destination", v, p);
			CHECK(ppbpf_parse(h, (__u32)n - 1, &ph) == PPBPF_E_INCOMPLETE, "v%d pair %d prefix incomplete", v, p);
		}
	}
	CHECK(!build_header(h, 2, (struct sockaddr *)&a4.ss, (struct sockaddr *)&b6.ss), "mixed families refused");
	preamble_encode(st.head, 7, 100);
	st.head_len = PRE_LEN;
	st.total = PRE_LEN + 100;
	CHECK(ppbpf_parse(st.head, 1, &ph) == PPBPF_E_NOT_PROXY, "the preamble is NOT_PROXY at its first byte");
	stream_fill(&st, 0, buf, 116);
	{
		uint32_t idx;
		uint64_t len;

		preamble_decode(buf, &idx, &len);
		CHECK(idx == 7 && len == 100 && preamble_at(buf), "preamble round trip");
		for (int k = 0; k < PRE_LEN; k++) { /* every byte of it is checked */
			buf[k] ^= 0x5a;
			CHECK(!preamble_at(buf), "preamble byte %d corrupt is seen", k);
			buf[k] ^= 0x5a;
		}
	}
	CHECK(buf[PRE_LEN + 8] == 1 && buf[PRE_LEN + 16] == 2 && buf[PRE_LEN + 9] == 0, "counters");
	payload_check(&c, KIND_COUNTERS, 0, 0, buf + PRE_LEN, 100);
	CHECK(c.mismatches == 0, "payload checks");
	for (uint64_t off = 0; off < 200; off += 13) { /* a fill from any offset agrees with the whole */
		uint8_t part[64];

		payload_fill(KIND_COUNTERS, 0, off, part, sizeof(part));
		payload_check(&c, KIND_COUNTERS, 0, off, part, sizeof(part));
	}
	CHECK(c.mismatches == 0, "partial fills");
	st.corrupt_at = 50;
	stream_fill(&st, 40, buf, 20);
	payload_check(&c, KIND_COUNTERS, 0, 40 - PRE_LEN, buf, 20);
	CHECK(c.mismatches == 1 && c.first_bad == 50 - PRE_LEN, "corrupt-at flips one byte");
	for (int k = 0; k < 1000; k++) {
		size_t v = rand_size(&rng, 1000);

		CHECK(v >= 1 && v <= 1000, "rand_size in range");
	}
	return t_summary("selftest");
}

/* ---- main ---------------------------------------------------------------------------------- */

static const char usage_text[] =
	"usage: send_test MODE ARGS...   (send_test --list: the modes; --help: this)\n"
	"Tests the sending side: the kernel starts each outgoing TCP connection of a cgroup\n"
	"with a PROXY header (source = the connecting socket's local address:port,\n"
	"destination = its remote address:port); the application's bytes follow unchanged.\n"
	"ADDR PORT: a numeric IPv4 or IPv6 address and a port, two arguments (\"::1 20000\",\n"
	"\"[::1] 20000\"). Sizes take K, M, G (1024-based). Every JSON line is one object on\n"
	"stdout; errors on stderr. Every blocking call has --timeout S (default 20):\n"
	"SO_RCVTIMEO/SO_SNDTIMEO on every socket (connect and accept too), poll() timeouts.\n"
	"Exit status: 0 all ok, 1 a failure, 2 a usage or setup error.\n"
	"\n"
	"Stream (what the client writes): [its own PROXY header, with --self-header only],\n"
	"a 16-byte preamble, little endian: \"SN\", u16 check (the low 16 bits of CRC32C\n"
	"over bytes 4..15), u32 index, u64 payload length L; then L payload bytes: byte o\n"
	"is byte o%8 of the LE u64 o/8 (counters 0, 1, 2, ... as a byte stream). After\n"
	"EOF the server answers \"OK\\r\\n\" or \"NG\\r\\n\" and closes.\n"
	"\n"
	"recv ADDR PORT N [--expect v1|v2|none|any] [--threads K] [--syn-hold-ms MS] [--timeout S]\n"
	"  bind, listen(1024) (PORT 0 = any; TCP_FASTOPEN allowed on the listener), then\n"
	"  {\"listening\":\"A:P\",\"port\":P}. Accept N connections (K threads, default 1);\n"
	"  each is read to EOF. The stream must start with a PROXY header of the expected\n"
	"  version (default any: v1, v2 or none; none: no header at all), parsed with the\n"
	"  shared parser (ppbpf/parse.h): PROXY TCP4|TCP6, source == getpeername() and\n"
	"  destination == getsockname() of the accepted socket (address and port; a\n"
	"  v4-mapped IPv6 address, on either side, counts as its IPv4 address: \"mapped\"\n"
	"  says the header's was). Then the preamble, right after the header, then exactly\n"
	"  L payload bytes, all as above. Per connection:\n"
	"  {\"i\":accept order,\"index\":preamble index (-1: none),\"version\":\"v1\"|\"v2\"|\n"
	"  \"none\"|\"invalid\"|\"incomplete\"|\"unknown\",\"src\",\"dst\":the header's (null: none),\n"
	"  \"peer\",\"local\",\"header_ok\",\"header_len\",\"family\",[\"mapped\"],[\"tlv_len\"],\n"
	"  \"bytes\":payload bytes after the preamble,\"expected\":L,\"mismatches\",[\"first_bad\":\n"
	"  payload offset,\"got_hex\",\"want_hex\"],[\"preamble_at\":where it was instead],\n"
	"  \"total\":stream bytes,\"ms\",[\"error\":the first thing wrong],\"ok\"}.\n"
	"  Last {\"summary\":\"recv\",\"expect\",\"conns\",\"ok\",\"failed\",\"missing\",\"v1\",\"v2\",\n"
	"  \"none\",\"invalid\":all other versions,\"dup_index\",\"bytes\",\"seconds\"}. Exit 0 iff\n"
	"  all N were ok.\n"
	"  A header followed by a second one (the kernel's and the application's) is an\n"
	"  error of its own.\n"
	"  --syn-hold-ms MS: for MS after the listening line, a connection of recv's own\n"
	"  fills the accept queue (backlog 0), so clients' SYNs are dropped and they stay\n"
	"  in SYN_SENT until a retransmission (~1 s, 3 s, ...): `send --nb-connect` then\n"
	"  really writes before the handshake completes (on loopback it never does\n"
	"  otherwise). The filler is not one of the N.\n"
	"\n"
	"send ADDR PORT --bytes B [--pattern P] [--index I] [--seed S] [--self-header v1|v2|none]\n"
	"     [--nb-connect] [--no-verdict] [--timeout S]\n"
	"  One connection (TCP_NODELAY): connect, write the preamble (index I, default 0)\n"
	"  and B payload bytes with pattern P (default write), shutdown(SHUT_WR), read to\n"
	"  EOF. Call sizes are drawn (log-uniform) from S and I. Patterns (each carries\n"
	"  the whole stream, header and preamble included, the same way):\n"
	"    write        write(2) calls of 1..256 KiB\n"
	"    writev       writev(2), 2..64 iovecs of 1..16 KiB, gaps between their buffers\n"
	"    sendmsg      sendmsg(2), 16..128 iovecs of 0..8 KiB (1 in 16 empty)\n"
	"    more         send(2) of 1..64 KiB with MSG_MORE on all but the last\n"
	"    cork         TCP_CORK on (before connect), write(2)s of 1..64 KiB, TCP_CORK off\n"
	"    sendfile     pieces of 1 B..1 MiB written to an unlinked temp file ($TMPDIR or\n"
	"                 /tmp, never rewritten, punched out 64 MiB behind), then sendfile(2)\n"
	"    splice       pieces of up to the pipe's size (1 MiB) written into a pipe, then\n"
	"                 splice(2) to the socket (SPLICE_F_MORE but for the last)\n"
	"    nonblock     write with --nb-connect\n"
	"    first-small  a 1-byte write(2), then writes of 256 KiB..1 MiB\n"
	"    fastopen     TCP_FASTOPEN_CONNECT, then write(2)s of 1..64 KiB: the first\n"
	"                 write sends the SYN (with data if net.ipv4.tcp_fastopen allows)\n"
	"  --nb-connect (any pattern): a non-blocking socket; the first call is made right\n"
	"  after connect() returns EINPROGRESS, before the handshake is known to be done;\n"
	"  EAGAIN (and ENOTCONN while not connected) waits in poll(POLLOUT) and retries.\n"
	"  --self-header: the program writes a correct header itself first, built from\n"
	"  getsockname() and the address connected to, so `recv` can be tested without\n"
	"  the kernel side. --no-verdict: a clean EOF is success (a server other than recv).\n"
	"  Prints {\"index\",\"pattern\",\"bytes\":B,\"self_header\",\"nb_connect\",\"seed\",\"local\",\n"
	"  \"dst\",\"sent\":stream bytes taken,\"total\":stream length,\"calls\",\"partial\":calls\n"
	"  that took less than offered,[\"connect\":\"0\"|\"EINPROGRESS\",\"state_at_first_try\",\n"
	"  \"first_try\":\"ok\"|errno name,\"first_try_bytes\",\"early_tries\":calls refused in\n"
	"  SYN_SENT,\"eagain\":calls refused in all] (with --nb-connect or fastopen),\n"
	"  \"verdict\":\"OK\"|\"NG\"|null,\"ms\",[\"error\"],\"ok\"}. Exit 0 iff the server said OK.\n"
	"\n"
	"many ADDR PORT N [--concurrency C] [--seed S] [--bytes-max M] [--self-header v1|v2|none|mix]\n"
	"     [--patterns LIST] [--nb-connect mix|never|always] [--each] [--no-verdict] [--timeout S]\n"
	"  N connections, index i = 0..N-1, C at once (threads, default 32), each one as\n"
	"  `send` with, from r = mix64(mix64(S ^ 0x5eed) + i): pattern = LIST[r % |LIST|]\n"
	"  (default the first nine above, all but fastopen); bytes: 1 in 16 none, 1 in 16\n"
	"  1..64, 8 in 16 log-uniform in 1..M, 6 in 16 uniform in 0..M (M default 1 MiB);\n"
	"  --nb-connect mix (default): 1 in 4 non-blocking; --self-header mix: i % 3 =\n"
	"  none, v1, v2. A connection is redone alone with `send ADDR PORT --bytes B\n"
	"  --pattern P --index i --seed S [--nb-connect] [--self-header V]` (its line has\n"
	"  all of them). Prints failed connections' lines (--each: all), then\n"
	"  {\"summary\":\"many\",\"conns\",\"ok\",\"failed\",\"seconds\",\"by_pattern\":{P:[ok,failed]},\n"
	"  \"first_failure\":the lowest failed i's line, or null}. The server side:\n"
	"  recv ADDR PORT N --threads C.\n"
	"\n"
	"selftest\n"
	"  The header builder against the shared parser, preamble, counters; no sockets.\n"
	"\n"
	"Examples:\n"
	"  send_test recv 127.0.0.1 0 1 --expect v2 &        # prints its port\n"
	"  send_test send 127.0.0.1 PORT --bytes 1M --pattern splice\n"
	"  send_test recv ::1 20001 1000 --expect v1 --threads 32 &\n"
	"  send_test many ::1 20001 1000 --seed 7 --self-header v1\n"
	"  send_test recv 127.0.0.1 20002 1 --expect none --timeout 60 &\n"
	"  send_test send 127.0.0.1 20002 --bytes 2G --timeout 60\n";

static const struct mode modes[] = {
	{ "recv", cmd_recv },
	{ "send", cmd_send },
	{ "many", cmd_many },
	{ "selftest", cmd_selftest },
};

int main(int argc, char **argv)
{
	return MODE_MAIN(argc, argv, modes, usage_text);
}
