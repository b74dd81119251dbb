/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the two stream programs, stream_test.c and send_test.c:
 * usage errors, JSON lines on stdout, numbers from the command line,
 * deterministic randomness, worker threads, main() over the modes, socket
 * addresses, the plain PROXY v1/v2 header of two socket ends, and the
 * payload streams with their checker.
 *
 * A program defines, before it includes this file:
 *   STREAMLIB_PROG               its name, a string literal ("stream_test"):
 *                                the prefix of die_usage()'s message
 *   STREAMLIB_DOTTED_QUADS_ONLY  1: endpoint_from() takes IPv4 only as a
 *                                dotted quad (optional, default 0)
 *
 * All functions are static inline, so a program that uses only some of them
 * compiles without unused-function warnings.
 */
#ifndef PPBPF_STREAMLIB_H
#define PPBPF_STREAMLIB_H

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "testlib.h"

#ifndef STREAMLIB_PROG
#error "define STREAMLIB_PROG (the program's name, a string literal) before including streamlib.h"
#endif
#ifndef STREAMLIB_DOTTED_QUADS_ONLY
#define STREAMLIB_DOTTED_QUADS_ONLY 0
#endif

/* ---- usage errors, JSON lines ------------------------------------------------------ */

/* "PROG: <message> (see --help)" on stderr, and exit status 2. */
static inline void die_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static inline void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs(STREAMLIB_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	exit(2);
}

/* One JSON line, written whole with one write(2), so threads never interleave. */
static inline void emit(const char *line)
{
	static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
	size_t n = strlen(line);
	char *buf = malloc(n + 1);

	if (!buf)
		abort();
	memcpy(buf, line, n);
	buf[n] = '\n';
	pthread_mutex_lock(&out_lock);
	for (size_t off = 0; off <= n;) {
		ssize_t w = write(1, buf + off, n + 1 - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	pthread_mutex_unlock(&out_lock);
	free(buf);
}

/* A growing text buffer for one JSON line. */
struct jbuf {
	char s[4096];
	size_t n;
};

/* printf onto the line; what does not fit is cut off (the line stays terminated). */
static inline void jadd(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void jadd(struct jbuf *j, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (j->n >= sizeof(j->s) - 1)
		return;
	va_start(ap, fmt);
	w = vsnprintf(j->s + j->n, sizeof(j->s) - j->n, fmt, ap);
	va_end(ap);
	if (w > 0)
		j->n += (size_t)w;
	if (j->n > sizeof(j->s) - 1)
		j->n = sizeof(j->s) - 1;
}

/* ,"key":"value" (the texts here are errno names, addresses and hex). NULL: ,"key":null */
static inline void jstr(struct jbuf *j, const char *key, const char *val)
{
	if (!val) {
		jadd(j, ",\"%s\":null", key);
		return;
	}
	jadd(j, ",\"%s\":\"", key);
	for (const char *p = val; *p; p++)
		if (*p == '"' || *p == '\\')
			jadd(j, "\\%c", *p);
		else if ((unsigned char)*p < 0x20)
			jadd(j, "\\u%04x", (unsigned char)*p);
		else
			jadd(j, "%c", *p);
	jadd(j, "\"");
}

/* A JSON boolean. */
static inline const char *jbool(bool b)
{
	return b ? "true" : "false";
}

/* The line of a server's accept() number i that failed: {"i":i,"error":error,"ok":false}. */
static inline void emit_accept_failed(uint64_t i, const char *error)
{
	struct jbuf j = { .n = 0 };

	jadd(&j, "{\"i\":%" PRIu64, i);
	jstr(&j, "error", error);
	jadd(&j, ",\"ok\":false}");
	emit(j.s);
}

/* ---- numbers, names, randomness, time ---------------------------------------------- */

/* A whole number (decimal, 0x hex or 0 octal), nothing after it, no sign. */
static inline bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* Option opt's value s as a number from 0 to max, or a usage error. */
static inline uint64_t need_u64(const char *opt, const char *s, uint64_t max)
{
	uint64_t v;

	if (!parse_u64(s, &v) || v > max)
		die_usage("%s: '%s' is not a number from 0 to %" PRIu64, opt, s ? s : "", max);
	return v;
}

/* The index of name among names[0..n), -1 if it is none of them. */
static inline int lookup(const char *name, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

/* qsort() order of uint32_t values. */
static inline int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* splitmix64: all randomness of the programs, deterministic from --seed and the index. */
static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The next number of the sequence *state is at. */
static inline uint64_t rng_next(uint64_t *state)
{
	*state += 1;
	return mix64(*state);
}

/* Milliseconds since t0 (a now_s() time). */
static inline double ms_since(double t0)
{
	return (now_s() - t0) * 1000.0;
}

/*
 * The name of an errno both programs meet on sockets, NULL for the others:
 * each program's errname() adds its own names, then strerror().
 */
static inline const char *sock_errname(int e)
{
	switch (e) {
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ENETUNREACH: return "ENETUNREACH";
	default: return NULL;
	}
}

/* ---- threads, modes ----------------------------------------------------------------- */

/*
 * fn(arg) in k threads (at most n, the connections they share; at least 1),
 * then waits for them all. 0, or 2 after "<what>: pthread_create failed" on stderr.
 */
static inline int run_threads(uint64_t k, uint64_t n, void *(*fn)(void *), void *arg, const char *what)
{
	pthread_t *tids;

	if (k > n)
		k = n ? n : 1;
	tids = calloc(k, sizeof(*tids));
	if (!tids)
		abort();
	for (uint64_t t = 0; t < k; t++)
		if (pthread_create(&tids[t], NULL, fn, arg)) {
			fprintf(stderr, "%s: pthread_create failed\n", what);
			return 2;
		}
	for (uint64_t t = 0; t < k; t++)
		pthread_join(tids[t], NULL);
	free(tids);
	return 0;
}

/* A mode of a program: `PROG NAME ARGS...` runs run(number of ARGS, ARGS). */
struct mode {
	const char *name;
	int (*run)(int argc, char **argv);
};

/*
 * main(), with SIGPIPE ignored: `PROG --list` prints the modes' names,
 * `PROG --help` (or -h) the usage, on stdout; `PROG MODE ARGS...` exits with
 * the mode's status; anything else prints the usage on stderr, status 2.
 */
static inline int mode_main(int argc, char **argv, const struct mode *modes, size_t n, const char *usage)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", modes[i].name);
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return 0;
	}
	for (size_t i = 0; argc >= 2 && i < n; i++)
		if (!strcmp(argv[1], modes[i].name))
			return modes[i].run(argc - 2, argv + 2);
	fputs(usage, stderr);
	return 2;
}

#define MODE_MAIN(argc, argv, modes, usage) \
	mode_main((argc), (argv), (modes), sizeof(modes) / sizeof((modes)[0]), (usage))

/* ---- addresses ------------------------------------------------------------------- */

/* A socket address and its length. */
struct endpoint {
	struct sockaddr_storage ss;
	socklen_t len;
};

/*
 * A numeric host (IPv4, IPv6, "[IPv6]", IPv6 with %scope) and a port. With
 * STREAMLIB_DOTTED_QUADS_ONLY, IPv4 only as a dotted quad (not inet_aton's
 * "1.2.3" or "0x7f000001").
 */
static inline bool endpoint_from(const char *host, const char *port, struct endpoint *ep)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	size_t hl = strlen(host);
	char h[INET6_ADDRSTRLEN + IF_NAMESIZE + 4];

	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		if (hl - 2 >= sizeof(h))
			return false;
		memcpy(h, host + 1, hl - 2);
		h[hl - 2] = 0;
	} else {
		if (hl >= sizeof(h))
			return false;
		memcpy(h, host, hl + 1);
	}
	if (STREAMLIB_DOTTED_QUADS_ONLY && !strchr(h, ':')) {
		struct in_addr a4;

		if (inet_pton(AF_INET, h, &a4) != 1)
			return false;
	}
	if (getaddrinfo(h, port, &hints, &res) || !res)
		return false;
	memset(ep, 0, sizeof(*ep));
	memcpy(&ep->ss, res->ai_addr, res->ai_addrlen);
	ep->len = res->ai_addrlen;
	freeaddrinfo(res);
	return true;
}

/* The port of an IPv4 or IPv6 socket address. */
static inline int ep_port(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
					       : ((const struct sockaddr_in *)sa)->sin_port);
}

/* "a.b.c.d:port" or "[v6]:port". */
static inline void ep_format(const struct sockaddr *sa, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, a, sizeof(a));
		snprintf(out, n, "[%s]:%d", a, ep_port(sa));
	} else if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, a, sizeof(a));
		snprintf(out, n, "%s:%d", a, ep_port(sa));
	} else {
		snprintf(out, n, "family-%d", sa->sa_family);
	}
}

/*
 * Family (4 or 6; 0: neither), 16 address bytes (IPv4 in the first 4) and port
 * of an address given as family 4 or 6 and its bytes; v4-mapped IPv6 counts as IPv4.
 */
static inline void key_of(int family, const uint8_t *a, int port, int *fam, uint8_t addr[16], int *kport)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(addr, 0, 16);
	*fam = 0;
	*kport = port;
	if (family == 4) {
		*fam = 4;
		memcpy(addr, a, 4);
	} else if (family == 6 && !memcmp(a, mapped, 12)) {
		*fam = 4;
		memcpy(addr, a + 12, 4);
	} else if (family == 6) {
		*fam = 6;
		memcpy(addr, a, 16);
	}
}

/* key_of() for a socket address (another family than AF_INET/AF_INET6: family 0, port 0). */
static inline void ep_key(const struct sockaddr *sa, int *fam, uint8_t addr[16], int *port)
{
	if (sa->sa_family == AF_INET)
		key_of(4, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr, ep_port(sa), fam, addr, port);
	else if (sa->sa_family == AF_INET6)
		key_of(6, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, ep_port(sa), fam, addr, port);
	else
		key_of(0, NULL, 0, fam, addr, port);
}

/* ---- PROXY headers --------------------------------------------------------------------- */

/*
 * A PROXY TCP4/TCP6 header from src to dst, without TLVs, into out:
 * version 1 the text line (at most cap bytes with its NUL, cap >= 108),
 * otherwise v2 (PROXY command; 16 + 36 bytes at most), its length bytes
 * (14, 15) counting the address block. v4-mapped IPv6 ends are written as
 * TCP4. Returns its length, 0 if the two ends are not of one family.
 */
static inline size_t proxy_header(uint8_t *out, size_t cap, int version, const struct sockaddr *src,
				  const struct sockaddr *dst)
{
	static const uint8_t v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
	int fs, fd, ps, pd;
	uint8_t as[16], ad[16];
	size_t n;

	ep_key(src, &fs, as, &ps);
	ep_key(dst, &fd, ad, &pd);
	if (!fs || fs != fd)
		return 0;
	if (version == 1) {
		char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];

		inet_ntop(fs == 4 ? AF_INET : AF_INET6, as, s, sizeof(s));
		inet_ntop(fs == 4 ? AF_INET : AF_INET6, ad, d, sizeof(d));
		return (size_t)snprintf((char *)out, cap, "PROXY TCP%d %s %s %d %d\r\n", fs, s, d, ps, pd);
	}
	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = 0x21; /* version 2, PROXY */
	out[13] = fs == 4 ? 0x11 : 0x21;
	n = 16;
	memcpy(out + n, as, fs == 4 ? 4 : 16);
	n += fs == 4 ? 4 : 16;
	memcpy(out + n, ad, fs == 4 ? 4 : 16);
	n += fs == 4 ? 4 : 16;
	out[n++] = (uint8_t)(ps >> 8);
	out[n++] = (uint8_t)ps;
	out[n++] = (uint8_t)(pd >> 8);
	out[n++] = (uint8_t)pd;
	out[14] = 0;
	out[15] = (uint8_t)(n - 16);
	return n;
}

/* ---- payload streams ---------------------------------------------------------------- */

#define KIND_COUNTERS 1u /* byte o: byte o%8 of the little-endian u64 o/8 (both programs) */
#define KIND_PATTERN 2u  /* byte o: (o*7 + index) & 0xff (stream_test) */

/*
 * Payload byte at offset off:
 *   counters: consecutive little-endian u64 counters from 0 (byte off%8 of counter off/8);
 *   pattern: (off * 7 + index) & 0xff.
 */
static inline uint8_t payload_byte(uint32_t kind, uint32_t index, uint64_t off)
{
	if (kind == KIND_COUNTERS)
		return (uint8_t)((off >> 3) >> (8 * (off & 7)));
	return (uint8_t)(off * 7 + index);
}

/* Payload bytes [off, off + n) into buf (counters eight bytes at a time). */
static inline void payload_fill(uint32_t kind, uint32_t index, uint64_t off, uint8_t *buf, size_t n)
{
	size_t i = 0;

	if (kind == KIND_COUNTERS) {
		for (; i < n && ((off + i) & 7); i++)
			buf[i] = payload_byte(kind, index, off + i);
		for (; i + 8 <= n; i += 8) {
			uint64_t v = htole64((off + i) >> 3);

			memcpy(buf + i, &v, 8);
		}
	}
	for (; i < n; i++)
		buf[i] = payload_byte(kind, index, off + i);
}

/* Payload check: mismatching bytes and the first one. */
struct check {
	uint64_t mismatches;
	int64_t first_bad; /* payload offset, -1: none */
	char got_hex[33], want_hex[33];
};

/* The first mismatch: its offset, and up to 16 bytes from it as received and as expected. */
static inline void check_note_first(struct check *c, uint32_t kind, uint32_t index, uint64_t off,
				    const uint8_t *buf, size_t n)
{
	size_t k = n < 16 ? n : 16;

	c->first_bad = (int64_t)off;
	for (size_t i = 0; i < k; i++) {
		snprintf(c->got_hex + 2 * i, 3, "%02x", buf[i]);
		snprintf(c->want_hex + 2 * i, 3, "%02x", payload_byte(kind, index, off + i));
	}
}

/* Checks the n payload bytes in buf, which are those at offset off, into *c. */
static inline void payload_check(struct check *c, uint32_t kind, uint32_t index, uint64_t off, const uint8_t *buf,
				 size_t n)
{
	size_t i = 0;

	if (kind == KIND_COUNTERS) {
		for (; i < n && ((off + i) & 7); i++)
			if (buf[i] != payload_byte(kind, index, off + i) && !c->mismatches++)
				check_note_first(c, kind, index, off + i, buf + i, n - i);
		for (; i + 8 <= n; i += 8) {
			uint64_t v, want = htole64((off + i) >> 3);

			memcpy(&v, buf + i, 8);
			if (v == want)
				continue;
			for (size_t b = i; b < i + 8; b++)
				if (buf[b] != payload_byte(kind, index, off + b) && !c->mismatches++)
					check_note_first(c, kind, index, off + b, buf + b, n - b);
		}
	}
	for (; i < n; i++)
		if (buf[i] != payload_byte(kind, index, off + i) && !c->mismatches++)
			check_note_first(c, kind, index, off + i, buf + i, n - i);
}

#endif
