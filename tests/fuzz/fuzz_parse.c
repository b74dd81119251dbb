// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the shared parser. Besides "no crash, no over-read",
 * it checks the contract of README.md ("The codec") on every input, both as
 * userspace calls the parser (ppbpf_parse: no limit but the protocol's) and
 * as the kernel side does (ppbpf_parse_max on at most 4096 bytes, with a max
 * in 15..4096 picked from the input's hash: 4096, any, 15..127 where v1 lines
 * are cut, or around the header's length; plus 15, 16, 106, 107, 4095, 4096
 * and n - 1, n, n + 1 on the whole input).
 *
 *  prefix sweep, k = 0..size, for both callers:
 *   - the parser never reads beyond len: bytes [k, size) are ASan-poisoned
 *     while prefix k is parsed;
 *   - sane verdicts: never 0, a known status, an accepted length within the
 *     input and >= 15, need >= 1 on "incomplete";
 *   - monotonic: "incomplete" up to some prefix, then one final verdict that
 *     more bytes never change (an accepted header keeps every field: bytes
 *     after it change nothing);
 *   - for a header accepted at length n: every proper prefix is
 *     "incomplete", prefix n is accepted, and k + need <= n. The contract
 *     says need is a lower bound on the bytes still missing, over every way
 *     the prefix can be completed; this n is one such way;
 *   - "not_proxy" exactly when the prefix is no prefix of "PROXY" or of the
 *     v2 signature (as soon as that is certain, and not before);
 *   - a limit only adds "too_large": accepted n stays n if n <= max and is
 *     too_large otherwise; an error stays that error or becomes too_large;
 *     "incomplete" stays "incomplete" or becomes too_large;
 *   - with a limit, max bytes get a final verdict: the kernel side takes in
 *     at most max bytes, so "incomplete" there would wait forever.
 *  accepted headers:
 *   - shape: the v1 line (starts "PROXY ", ends at its first CRLF, <= 107
 *     bytes, addresses as inet_pton() reads them, strict decimal ports); the
 *     v2 fixed part, family decoding, where the TLVs start; the TLV rules
 *     (at most one CRC32C, 4 bytes, matching; UNIQUE_ID <= 128; SSL >= 5 and
 *     filled by its sub-TLVs; tlv_count right);
 *   - rebuild, for every family: ppbpf_build() from the parsed fields, the
 *     TLVs and (UNIX) the paths parses back to the same fields. Byte for byte
 *     the input for every v2 header whose TLVs were located (TCP/UDP 4/6,
 *     UNIX stream/dgram, UNSPEC, LOCAL with its undecoded block); a v2
 *     fallback pair comes back as UNSPEC, v1 as canonical text. Building again
 *     from the rebuilt header gives the same bytes; TCP4/TCP6 keep addresses
 *     and ports from v1 to v2 and back; the builder's CRC32C passes.
 *
 * Cost: while a v2 header is incomplete a parse is O(1), and a v1 parse reads
 * at most 107 bytes, so every prefix up to the final verdict is checked in
 * linear time. Past it each parse costs about the bytes that decided the
 * verdict (final_at): every prefix is still checked while the prefixes past
 * it times final_at + 16 stay within SWEEP_BUDGET (at least SWEEP_WINDOW_MIN
 * of them), then a doubling stride, and the last prefix. Any failure names
 * the invariant on stderr and aborts, so libFuzzer keeps the input.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ppbpf/ppbpf.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/*
 * The checks re-parse each input many times (every prefix, other limits,
 * rebuilt headers): they are kept out of the coverage feedback, which then
 * comes from the two parses of the whole input alone. Otherwise every input
 * would also "cover" what its prefixes reach, and the comparison hooks of
 * thousands of parses would take most of the time.
 */
#if defined(__clang__) && __clang_major__ >= 13
#define QUIET __attribute__((no_sanitize("coverage")))
#else
#define QUIET
#endif

/* The kernel hands the parser at most this many bytes, and a max in KMAX_MIN..KMAX. */
#define KBUF PPBPF_BPF_BUF_SIZE
#define KMAX PPBPF_BPF_BUF_SIZE
#define KMAX_MIN PPBPF_MIN_LEN
/* Largest input looked at: the largest v2 header and some bytes after it. */
#define MAX_INPUT (PPBPF_V2_MAX_LEN + 64)
/* Past the final verdicts: every prefix while prefixes x header bytes stay below this. */
#define SWEEP_BUDGET (1u << 16)
#define SWEEP_WINDOW_MIN 8

/* What the failure message says about where it happened. */
static struct {
	size_t size, k;
	__u32 max;
} where;

QUIET __attribute__((noreturn, format(printf, 3, 4))) static void fail(const char *inv, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "invariant failed: %s (line %d; input %zu bytes, prefix %zu, max %u): ", inv, line, where.size,
		where.k, where.max);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* CHECK(condition, "invariant name") */
#define CHECK(cond, inv)                                     \
	do {                                                 \
		if (!(cond))                                 \
			fail(inv, __LINE__, "%s", #cond);    \
	} while (0)
/* CHECKV(condition, "invariant name", "printf format", ...) */
#define CHECKV(cond, inv, ...)                               \
	do {                                                 \
		if (!(cond))                                 \
			fail(inv, __LINE__, __VA_ARGS__);    \
	} while (0)

/*
 * memcmp() for the checks: libFuzzer hooks every memcmp() call for its
 * comparison feedback, a cost worth paying only in the parser.
 */
QUIET static int differ(const void *a, const void *b, size_t n)
{
	const __u8 *x = a, *y = b;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) { /* a word at a time: one shadow check per 8 bytes */
		__u64 u, v;

		__builtin_memcpy(&u, x + i, 8);
		__builtin_memcpy(&v, y + i, 8);
		if (u != v)
			return 1;
	}
	for (; i < n; i++)
		if (x[i] != y[i])
			return 1;
	return 0;
}

QUIET static __u32 be16(const __u8 *p)
{
	return (__u32)p[0] << 8 | p[1];
}

QUIET static __u32 be32(const __u8 *p)
{
	return be16(p) << 16 | be16(p + 2);
}

/* ---- one verdict ------------------------------------------------------------ */

/* The checks every verdict gets, whatever came before. */
QUIET static void check_verdict(int r, const struct ppbpf_hdr *h, __u32 len)
{
	CHECK(r != 0, "verdict: never 0");
	CHECKV(r >= PPBPF_E_LAST, "verdict: a known status", "rc %d", r);
	if (r > 0) {
		CHECKV((__u32)r <= len, "verdict: an accepted header is within the input", "rc %d, len %u", r, len);
		CHECKV(r >= PPBPF_MIN_LEN, "verdict: no header is shorter than 15 bytes", "rc %d", r);
		CHECK(h->header_len == (__u32)r, "verdict: header_len is the return value");
		CHECK(h->version == 1 || h->version == 2, "verdict: version 1 or 2");
	} else if (r == PPBPF_E_INCOMPLETE) {
		CHECKV(h->need >= 1, "need >= 1 on incomplete", "need %u", h->need);
	}
}

/* How many leading bytes of buf[0, n) match lit[0, litlen). */
QUIET static size_t common_prefix(const __u8 *buf, size_t n, const char *lit, size_t litlen)
{
	size_t i = 0;

	while (i < n && i < litlen && buf[i] == (__u8)lit[i])
		i++;
	return i;
}

/*
 * Can a k-byte prefix still start a PROXY header: is it a prefix of "PROXY"
 * or of the v2 signature? match_v1, match_v2: common_prefix() of the input
 * with each.
 */
QUIET static int could_start(size_t k, size_t match_v1, size_t match_v2)
{
	return (k < 5 ? k : 5) <= match_v1 || (k < PPBPF_V2_SIG_LEN ? k : PPBPF_V2_SIG_LEN) <= match_v2;
}

/*
 * A limit only adds too_large: r is the verdict without limit, rm with max,
 * both on the same bytes.
 */
QUIET static void check_limit(int r, const struct ppbpf_hdr *h, int rm, const struct ppbpf_hdr *hm, __u32 max)
{
	if (r > 0) {
		int want = (__u32)r <= max ? r : PPBPF_E_TOO_LARGE;

		CHECKV(rm == want, "limit: accepted n stays n if n <= max, else too_large", "without %d, with %d",
		       r, rm);
		if (rm > 0)
			CHECK(differ(h, hm, sizeof(*h)) == 0, "limit: the same header parses to the same fields");
	} else if (r == PPBPF_E_INCOMPLETE) {
		CHECKV(rm == PPBPF_E_INCOMPLETE || rm == PPBPF_E_TOO_LARGE,
		       "limit: incomplete stays incomplete or becomes too_large", "with max: %d", rm);
	} else {
		CHECKV(rm == r || rm == PPBPF_E_TOO_LARGE, "limit: an error stays that error or becomes too_large",
		       "without %d, with %d", r, rm);
	}
}

/*
 * The kernel side takes in at most max bytes and parses them: with len >= max
 * the verdict must be final (the header fits and is judged, or it is
 * too_large), else the connection waits for bytes it will never take.
 */
#ifndef CHECK_FINAL_AT_MAX /* -DCHECK_FINAL_AT_MAX=0 skips it (parse.h fails it with max 15: see the report) */
#define CHECK_FINAL_AT_MAX 1
#endif
QUIET static void check_final_at_max(int r, const struct ppbpf_hdr *h, __u32 len, __u32 max)
{
	if (!CHECK_FINAL_AT_MAX)
		return;
	CHECKV(!(len >= max && r == PPBPF_E_INCOMPLETE),
	       "limit: max bytes get a final verdict (a header that cannot fit is too_large, not incomplete)",
	       "len %u, max %u, need %u", len, max, h->need);
}

/* ---- the prefix sweep ----------------------------------------------------------- */

/* One way of calling the parser: a header limit and at most cap bytes of input. */
struct variant {
	__u32 max, cap;
	int full;       /* verdict on the whole input (at most cap bytes) */
	int prev;       /* verdict on the last prefix swept */
	struct ppbpf_hdr prev_h;
	size_t final_at; /* first prefix with a final verdict; SIZE_MAX while none */
	int r;          /* this prefix */
	struct ppbpf_hdr h;
	size_t next;    /* next prefix to parse; SIZE_MAX when done */
	size_t window, stride;
	size_t match_v1, match_v2; /* common_prefix() of the input with "PROXY" and the v2 signature */
};

QUIET static void sweep_one(struct variant *v, const __u8 *buf, size_t k)
{
	where.max = v->max;
	v->r = ppbpf_parse_max(buf, (__u32)k, v->max, &v->h);
	check_verdict(v->r, &v->h, (__u32)k);
	check_final_at_max(v->r, &v->h, (__u32)k, v->max);
	CHECKV((v->r == PPBPF_E_NOT_PROXY) == !could_start(k, v->match_v1, v->match_v2), "not_proxy exactly when no header can start so",
	       "rc %d", v->r);
	if (v->prev != PPBPF_E_INCOMPLETE) {
		CHECKV(v->r == v->prev, "monotonic: more bytes never change a final verdict",
		       "at prefix %zu: %d, now %d", v->final_at, v->prev, v->r);
		if (v->r > 0)
			CHECK(differ(&v->h, &v->prev_h, sizeof(v->h)) == 0,
			      "bytes after an accepted header change none of its fields");
	} else if (v->r != PPBPF_E_INCOMPLETE) {
		v->prev = v->r;
		v->prev_h = v->h;
		v->final_at = k;
		if (v->full > 0)
			CHECKV(v->r == v->full && k == (size_t)v->full,
			       "every proper prefix of a valid header is incomplete, and the header is accepted at its length",
			       "the whole input gives %d, this prefix %d", v->full, v->r);
	} else if (v->full > 0) {
		CHECKV(k + v->h.need <= (size_t)v->full,
		       "need is a lower bound: a prefix of an n-byte header needs at most n - k more",
		       "need %u, header %d", v->h.need, v->full);
	}
}

/*
 * The next prefix a variant parses after k: every one until its verdict is
 * final, then every one while (prefixes x bytes that decided it) stays
 * within SWEEP_BUDGET, then a doubling stride; always its last one (cap).
 */
QUIET static void sweep_next(struct variant *v, size_t k)
{
	if (k >= v->cap) {
		v->next = SIZE_MAX;
		return;
	}
	if (v->final_at == SIZE_MAX) {
		v->next = k + 1;
		return;
	}
	if (!v->window) {
		v->window = SWEEP_BUDGET / (v->final_at + 16);
		if (v->window < SWEEP_WINDOW_MIN)
			v->window = SWEEP_WINDOW_MIN;
	}
	if (k < v->final_at + v->window) {
		v->next = k + 1;
	} else {
		v->next = k + v->stride;
		v->stride *= 2;
	}
	if (v->next > v->cap)
		v->next = v->cap;
}

/*
 * Parse prefixes k = 0..size of buf with each variant (a variant takes part
 * while k <= its cap), with buf[k, size) poisoned. v[0] has no limit beyond
 * the protocol's: the others are compared with it.
 */
QUIET static void sweep(const __u8 *buf, size_t size, struct variant *v, int nv)
{
	size_t k = 0, open = 0;

	for (int i = 0; i < nv; i++) {
		v[i].prev = PPBPF_E_INCOMPLETE;
		v[i].final_at = SIZE_MAX;
		v[i].next = 0;
		v[i].window = 0;
		v[i].stride = 1;
		v[i].match_v1 = common_prefix(buf, size, "PROXY", 5);
		v[i].match_v2 = common_prefix(buf, size, PPBPF_V2_SIG, PPBPF_V2_SIG_LEN);
	}
	POISON(buf, size);
	for (;;) {
		int seen[8] = { 0 };
		size_t next = size;

		UNPOISON(buf + open, k - open);
		open = k;
		where.k = k;
		for (int i = 0; i < nv; i++) {
			if (v[i].next != k)
				continue;
			sweep_one(&v[i], buf, k);
			seen[i] = 1;
			if (i && seen[0])
				check_limit(v[0].r, &v[0].h, v[i].r, &v[i].h, v[i].max);
		}
		if (k == size)
			break;
		for (int i = 0; i < nv; i++) {
			if (seen[i])
				sweep_next(&v[i], k);
			if (v[i].next < next)
				next = v[i].next;
		}
		k = next;
	}
	UNPOISON(buf, size);
}

/* ---- which limit ------------------------------------------------------------------- */

QUIET static __u32 fnv1a(const __u8 *p, size_t n)
{
	__u32 h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

QUIET static __u32 clamp_kmax(long m)
{
	return m < KMAX_MIN ? KMAX_MIN : m > KMAX ? KMAX : (__u32)m;
}

/*
 * A kernel limit for this input, from its hash (reproducible, and new with
 * every mutation): the default 4096, anything in 15..4096, the range where a
 * v1 line is cut (15..127), or around the header's length.
 */
QUIET static __u32 pick_kmax(const __u8 *data, size_t size, int rc)
{
	__u32 x = fnv1a(data, size), r = x >> 3;
	long len = 0;

	if (rc > 0)
		len = rc;
	else if (size >= PPBPF_V2_FIXED_LEN && data[0] == 0x0D)
		len = PPBPF_V2_FIXED_LEN + (long)be16(data + 14); /* what it claims */
	switch (x & 7) {
	case 0:
	case 1:
		return KMAX;
	case 2:
	case 3:
		return KMAX_MIN + r % (KMAX - KMAX_MIN + 1);
	case 4:
	case 5:
		return KMAX_MIN + r % 113;
	default:
		if (!len)
			return KMAX_MIN + r % 113;
		return clamp_kmax(len - 2 + (long)(r % 5));
	}
}

/* ---- accepted headers: shape and TLV rules ------------------------------------------- */

QUIET static __u32 v2_block(__u8 fam_byte)
{
	switch (fam_byte >> 4) {
	case 1:
		return PPBPF_V2_ADDR_INET;
	case 2:
		return PPBPF_V2_ADDR_INET6;
	case 3:
		return PPBPF_V2_ADDR_UNIX;
	default:
		return 0;
	}
}

/* The family of a family/transport byte the builder writes, or -1. */
QUIET static int v2_family(__u8 fam_byte)
{
	switch (fam_byte) {
	case 0x00:
		return PPBPF_FAM_UNSPEC;
	case 0x11:
		return PPBPF_FAM_TCP4;
	case 0x12:
		return PPBPF_FAM_UDP4;
	case 0x21:
		return PPBPF_FAM_TCP6;
	case 0x22:
		return PPBPF_FAM_UDP6;
	case 0x31:
		return PPBPF_FAM_UNIX_STREAM;
	case 0x32:
		return PPBPF_FAM_UNIX_DGRAM;
	default:
		return -1;
	}
}

/* A decimal port as the rules allow it (no sign, no leading zero, <= 65535), or -1. */
QUIET static long port_of(const char *s, size_t n)
{
	long v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= 65535 ? v : -1;
}

/* An accepted v1 line: its text, and the addresses and ports against libc. */
QUIET static void check_v1_shape(const __u8 *data, const struct ppbpf_hdr *h)
{
	const char *line = (const char *)data;
	size_t n = h->header_len, f[6], e[6], nf = 0, i = 0;

	CHECK(n <= PPBPF_V1_MAX_LEN, "v1 shape: at most 107 bytes");
	CHECK(differ(line, "PROXY ", 6) == 0, "v1 shape: starts with \"PROXY \"");
	CHECK(line[n - 2] == '\r' && line[n - 1] == '\n', "v1 shape: ends with CRLF");
	CHECK(memmem(line, n, "\r\n", 2) == line + n - 2, "v1 shape: ends at the first CRLF");
	CHECK(h->command == PPBPF_CMD_PROXY && h->fam_byte == 0 && h->tlv_len == 0 && h->tlv_count == 0,
	      "v1 shape: command PROXY, no v2 fields");
	if (h->family == PPBPF_FAM_UNKNOWN) {
		CHECK(differ(line + 6, "UNKNOWN", 7) == 0 && (line[13] == ' ' || line[13] == '\r'),
		      "v1 shape: UNKNOWN");
		return;
	}
	CHECK(h->family == PPBPF_FAM_TCP4 || h->family == PPBPF_FAM_TCP6, "v1 shape: TCP4, TCP6 or UNKNOWN");
	/* "PROXY TCPx a b p q": six fields, single spaces */
	while (i < n - 2 && nf < 6) {
		f[nf] = i;
		while (i < n - 2 && line[i] != ' ')
			i++;
		e[nf++] = i;
		i++;
	}
	CHECK(nf == 6 && e[5] == n - 2, "v1 shape: six fields");
	CHECK(e[1] - f[1] == 4 && differ(line + f[1], h->family == PPBPF_FAM_TCP4 ? "TCP4" : "TCP6", 4) == 0,
	      "v1 shape: the protocol names the family");
	for (int a = 0; a < 2; a++) {
		char txt[64];
		__u8 bin[16] = { 0 };
		size_t l = e[2 + a] - f[2 + a];

		CHECK(l > 0 && l < sizeof(txt), "v1 shape: address length");
		memcpy(txt, line + f[2 + a], l);
		txt[l] = 0;
		CHECKV(inet_pton(h->family == PPBPF_FAM_TCP4 ? AF_INET : AF_INET6, txt, bin) == 1,
		       "v1: an accepted address is one inet_pton() accepts", "\"%s\"", txt);
		CHECKV(differ(bin, a ? h->dst_addr : h->src_addr, 16) == 0,
		       "v1: the parsed address is inet_pton()'s", "\"%s\"", txt);
	}
	CHECK(port_of(line + f[4], e[4] - f[4]) == h->src_port, "v1: source port");
	CHECK(port_of(line + f[5], e[5] - f[5]) == h->dst_port, "v1: destination port");
}

/* An accepted v2 header: fixed part, where the TLVs are, and the TLV rules. */
QUIET static void check_v2_shape(const __u8 *data, const struct ppbpf_hdr *h)
{
	__u8 fb = data[13];
	__u32 alen = be16(data + 14), block = v2_block(fb), crc_off = 0;
	int known = (fb >> 4) && (fb & 0xF), crcs = 0;
	__u32 tlv_start, count = 0;
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;
	int r;

	CHECK(differ(data, PPBPF_V2_SIG, PPBPF_V2_SIG_LEN) == 0, "v2 shape: signature");
	CHECK(data[12] >> 4 == 2 && (data[12] & 0xF) <= PPBPF_CMD_PROXY && h->command == (data[12] & 0xF),
	      "v2 shape: version 2, command LOCAL or PROXY");
	CHECK((fb >> 4) <= 3 && (fb & 0xF) <= 2 && h->fam_byte == fb, "v2 shape: family/transport in range");
	CHECK(h->header_len == PPBPF_V2_FIXED_LEN + alen, "v2 shape: length field");
	CHECK(!(h->command == PPBPF_CMD_PROXY && known && alen < block), "v2 shape: the address block fits");
	CHECK(h->addr_off == PPBPF_V2_FIXED_LEN, "v2 shape: addresses after the fixed part");
	if (h->command == PPBPF_CMD_PROXY && known)
		CHECK(h->family == v2_family(fb), "v2 shape: the six listed pairs are decoded");
	else
		CHECK(h->family == PPBPF_FAM_UNSPEC, "v2 shape: LOCAL and the other pairs are UNSPEC");
	if (fb == 0)
		tlv_start = PPBPF_V2_FIXED_LEN;
	else if (known && alen >= block)
		tlv_start = PPBPF_V2_FIXED_LEN + block;
	else
		tlv_start = h->header_len;
	CHECKV(h->tlv_off == tlv_start && h->tlv_off + h->tlv_len == h->header_len,
	       "v2 shape: TLVs after the address block, up to the end", "tlv_off %u, expected %u", h->tlv_off,
	       tlv_start);
	if (h->family == PPBPF_FAM_TCP4 || h->family == PPBPF_FAM_UDP4) {
		__u8 z[12] = { 0 };

		CHECK(differ(h->src_addr, data + 16, 4) == 0 && differ(h->dst_addr, data + 20, 4) == 0 &&
			      differ(h->src_addr + 4, z, 12) == 0 && differ(h->dst_addr + 4, z, 12) == 0 &&
			      h->src_port == be16(data + 24) && h->dst_port == be16(data + 26),
		      "v2: IPv4 addresses and ports");
	} else if (h->family == PPBPF_FAM_TCP6 || h->family == PPBPF_FAM_UDP6) {
		CHECK(differ(h->src_addr, data + 16, 16) == 0 && differ(h->dst_addr, data + 32, 16) == 0 &&
			      h->src_port == be16(data + 48) && h->dst_port == be16(data + 50),
		      "v2: IPv6 addresses and ports");
	}

	ppbpf_tlv_iter_init(&it, data, h);
	while ((r = ppbpf_tlv_next(&it, &t)) > 0) {
		count++;
		switch (t.type) {
		case PPBPF_TLV_CRC32C:
			CHECK(t.len == 4, "TLV rules: CRC32C is 4 bytes");
			crcs++;
			crc_off = (__u32)(t.value - data);
			break;
		case PPBPF_TLV_UNIQUE_ID:
			CHECK(t.len <= PPBPF_UNIQUE_ID_MAX, "TLV rules: UNIQUE_ID is at most 128 bytes");
			break;
		case PPBPF_TLV_SSL: {
			struct ppbpf_tlv_iter sub;
			struct ppbpf_tlv s;

			CHECK(t.len >= PPBPF_SSL_HEAD_LEN, "TLV rules: SSL is at least 5 bytes");
			CHECK(ppbpf_ssl_iter_init(&sub, &t) == 0, "TLV rules: SSL iterates");
			while ((r = ppbpf_tlv_next(&sub, &s)) > 0)
				;
			CHECK(r == 0, "TLV rules: SSL sub-TLVs fill it exactly");
			break;
		}
		}
	}
	CHECK(r == 0, "TLV rules: the TLVs fill the header exactly");
	CHECKV(count == h->tlv_count, "tlv_count is the number of top-level TLVs", "iterated %u, tlv_count %u",
	       count, h->tlv_count);
	CHECK(crcs <= 1, "TLV rules: at most one CRC32C");
	if (crcs) {
		static __u8 tmp[PPBPF_V2_MAX_LEN];

		memcpy(tmp, data, h->header_len);
		memset(tmp + crc_off, 0, 4);
		CHECK(ppbpf_crc32c(tmp, h->header_len) == be32(data + crc_off),
		      "TLV rules: CRC32C over the header with the field zeroed");
	}
}

/* ---- accepted headers: rebuild ------------------------------------------------------- */

static struct ppbpf_tlv tlvs_a[PPBPF_V2_MAX_LEN / PPBPF_TLV_HDR_LEN + 2];
static struct ppbpf_tlv tlvs_b[PPBPF_V2_MAX_LEN / PPBPF_TLV_HDR_LEN + 2];
static __u8 out_a[PPBPF_V2_MAX_LEN + 16], out_b[PPBPF_V2_MAX_LEN + 16];

/*
 * What ppbpf_build() needs to write the header h of data again. Returns
 * whether that must be byte for byte data: every v2 header whose
 * family/transport the builder writes and whose TLVs the parser located
 * (a LOCAL one gets its undecoded address block back from data). v1 text
 * is not always canonical; a v2 fallback pair becomes UNSPEC.
 */
QUIET static int to_build(const __u8 *data, const struct ppbpf_hdr *h, struct ppbpf_build *b, struct ppbpf_tlv *tlvs)
{
	const __u8 *a = data + h->addr_off;
	struct ppbpf_tlv_iter it;
	int f, exact;

	memset(b, 0, sizeof(*b));
	b->version = h->version;
	b->command = h->command;
	b->family = h->family;
	b->src_port = h->src_port;
	b->dst_port = h->dst_port;
	memcpy(b->src_addr, h->src_addr, 16);
	memcpy(b->dst_addr, h->dst_addr, 16);
	if (h->version == 1)
		return 0;
	f = v2_family(h->fam_byte);
	exact = f >= 0 && h->tlv_off == PPBPF_V2_FIXED_LEN + v2_block(h->fam_byte);
	if (exact && b->family != f) { /* LOCAL: the block was sent, not decoded */
		b->family = (__u8)f;
		switch (f) {
		case PPBPF_FAM_TCP4:
		case PPBPF_FAM_UDP4:
			memcpy(b->src_addr, a, 4);
			memcpy(b->dst_addr, a + 4, 4);
			b->src_port = (__u16)be16(a + 8);
			b->dst_port = (__u16)be16(a + 10);
			break;
		case PPBPF_FAM_TCP6:
		case PPBPF_FAM_UDP6:
			memcpy(b->src_addr, a, 16);
			memcpy(b->dst_addr, a + 16, 16);
			b->src_port = (__u16)be16(a + 32);
			b->dst_port = (__u16)be16(a + 34);
			break;
		}
	}
	if (b->family == PPBPF_FAM_UNIX_STREAM || b->family == PPBPF_FAM_UNIX_DGRAM) {
		memcpy(b->src_path, a, PPBPF_UNIX_PATH_LEN);
		memcpy(b->dst_path, a + PPBPF_UNIX_PATH_LEN, PPBPF_UNIX_PATH_LEN);
	}
	ppbpf_tlv_iter_init(&it, data, h);
	while (ppbpf_tlv_next(&it, &tlvs[b->n_tlvs]) > 0)
		b->n_tlvs++;
	b->tlvs = tlvs;
	return exact;
}

/* Parse a built header from an exact-size copy (ASan sees any over-read). */
QUIET static int parse_built(const __u8 *buf, int len, struct ppbpf_hdr *h)
{
	__u8 *copy = malloc((size_t)len);
	int r;

	memcpy(copy, buf, (size_t)len);
	r = ppbpf_parse(copy, (__u32)len, h);
	free(copy);
	return r;
}

/* The TLV lists of two accepted headers are the same. */
QUIET static int same_tlvs(const __u8 *d1, const struct ppbpf_hdr *h1, const __u8 *d2, const struct ppbpf_hdr *h2)
{
	struct ppbpf_tlv_iter i1, i2;
	struct ppbpf_tlv t1, t2;
	int r1, r2;

	ppbpf_tlv_iter_init(&i1, d1, h1);
	ppbpf_tlv_iter_init(&i2, d2, h2);
	for (;;) {
		r1 = ppbpf_tlv_next(&i1, &t1);
		r2 = ppbpf_tlv_next(&i2, &t2);
		if (r1 != r2)
			return 0;
		if (r1 <= 0)
			return 1;
		if (t1.type != t2.type || t1.len != t2.len || differ(t1.value, t2.value, t1.len))
			return 0;
	}
}

/* What the parser said about both is the same, as far as the builder can say it. */
QUIET static void check_same_fields(const char *inv, const __u8 *d1, const struct ppbpf_hdr *h1, const __u8 *d2,
			      const struct ppbpf_hdr *h2, int exact)
{
	CHECKV(h2->version == h1->version && h2->command == h1->command && h2->family == h1->family, inv,
	       "version %u/%u, command %u/%u, family %u/%u", h1->version, h2->version, h1->command, h2->command,
	       h1->family, h2->family);
	CHECKV(differ(h1->src_addr, h2->src_addr, 16) == 0 && differ(h1->dst_addr, h2->dst_addr, 16) == 0 &&
		       h1->src_port == h2->src_port && h1->dst_port == h2->dst_port,
	       inv, "%s", "addresses or ports differ");
	if (h1->family == PPBPF_FAM_UNIX_STREAM || h1->family == PPBPF_FAM_UNIX_DGRAM)
		CHECKV(differ(d1 + h1->addr_off, d2 + h2->addr_off, PPBPF_V2_ADDR_UNIX) == 0, inv, "%s",
		       "UNIX paths differ");
	CHECKV(h2->tlv_count == h1->tlv_count && same_tlvs(d1, h1, d2, h2), inv, "%s", "TLVs differ");
	if (exact)
		CHECKV(differ(h1, h2, sizeof(*h1)) == 0, inv, "%s", "an exact rebuild parses to other fields");
	else if (h1->version == 2)
		CHECKV(h2->fam_byte == 0, inv, "%s", "a fallback pair is rebuilt as UNSPEC");
}

/* A TCP4/TCP6 PROXY header written in the other version keeps its addresses and ports. */
QUIET static void check_other_version(const struct ppbpf_hdr *h)
{
	struct ppbpf_build b = { .version = h->version == 1 ? 2 : 1, .command = PPBPF_CMD_PROXY, .family = h->family };
	struct ppbpf_hdr h2;
	int len, r;

	b.src_port = h->src_port;
	b.dst_port = h->dst_port;
	memcpy(b.src_addr, h->src_addr, 16);
	memcpy(b.dst_addr, h->dst_addr, 16);
	len = ppbpf_build(&b, out_b, sizeof(out_b));
	CHECKV(len > 0, "v1 <-> v2: the builder writes TCP4/TCP6 in both versions", "build %d", len);
	r = parse_built(out_b, len, &h2);
	CHECKV(r == len, "v1 <-> v2: the other version parses", "rc %d, built %d", r, len);
	CHECK(h2.version == b.version && h2.family == h->family && differ(h2.src_addr, h->src_addr, 16) == 0 &&
		      differ(h2.dst_addr, h->dst_addr, 16) == 0 && h2.src_port == h->src_port &&
		      h2.dst_port == h->dst_port,
	      "v1 <-> v2: same family, addresses and ports");
}

/* The builder's CRC32C (flag PPBPF_BUILD_CRC32C, the input's own one dropped) passes the parser. */
QUIET static void check_crc_build(const __u8 *data, const struct ppbpf_hdr *h, struct ppbpf_build *b)
{
	unsigned int n = 0, crc_at = 0;
	int had = 0, len, r;
	struct ppbpf_hdr h2;
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t, last = { 0 };

	for (unsigned int i = 0; i < b->n_tlvs; i++) {
		if (b->tlvs[i].type == PPBPF_TLV_CRC32C) {
			had = 1;
			crc_at = i;
			continue;
		}
		tlvs_b[n++] = b->tlvs[i];
	}
	b->tlvs = tlvs_b;
	b->n_tlvs = n;
	b->flags = PPBPF_BUILD_CRC32C;
	len = ppbpf_build(b, out_b, sizeof(out_b));
	if (h->header_len - (had ? 7 : 0) + 7 > PPBPF_V2_MAX_LEN) {
		CHECKV(len == -EMSGSIZE, "CRC32C build: -EMSGSIZE past 65535 bytes", "build %d", len);
		return;
	}
	CHECKV(len == (int)h->header_len + (had ? 0 : 7), "CRC32C build: 7 bytes for the TLV", "build %d", len);
	r = parse_built(out_b, len, &h2);
	CHECKV(r == len, "CRC32C build: the builder's CRC32C is the parser's", "rc %d", r);
	CHECK(h2.tlv_count == n + 1, "CRC32C build: one TLV more");
	ppbpf_tlv_iter_init(&it, out_b, &h2);
	while (ppbpf_tlv_next(&it, &t) > 0)
		last = t;
	CHECK(last.type == PPBPF_TLV_CRC32C && last.len == 4, "CRC32C build: the CRC32C TLV comes last");
	if (had && crc_at == h->tlv_count - 1)
		CHECK(differ(out_b, data, (size_t)len) == 0, "CRC32C build: a header whose CRC32C is last is rebuilt exactly");
}

QUIET static void check_rebuild(const __u8 *data, const struct ppbpf_hdr *h)
{
	struct ppbpf_build b, b2;
	struct ppbpf_hdr h2, h3;
	int exact, len, len2, r;

	exact = to_build(data, h, &b, tlvs_a);
	len = ppbpf_build(&b, out_a, sizeof(out_a));
	CHECKV(len > 0, "rebuild: the builder writes every header the parser accepts", "build %d (family %u)", len,
	       b.family);
	if (exact)
		CHECKV(len == (int)h->header_len && differ(out_a, data, (size_t)len) == 0,
		       "rebuild: byte for byte the input", "built %d bytes of %u", len, h->header_len);
	r = parse_built(out_a, len, &h2);
	CHECKV(r == len, "rebuild: the rebuilt header parses", "rc %d, built %d", r, len);
	check_same_fields("rebuild: the rebuilt header parses to the same fields", data, h, out_a, &h2, exact);

	/* Built from what the rebuilt header parses to, the same bytes again. */
	to_build(out_a, &h2, &b2, tlvs_b);
	len2 = ppbpf_build(&b2, out_b, sizeof(out_b));
	CHECKV(len2 == len && differ(out_a, out_b, (size_t)len) == 0, "rebuild: a rebuilt header is a fixed point",
	       "built %d then %d bytes", len, len2);
	r = parse_built(out_b, len2, &h3);
	CHECK(r == len2 && differ(&h2, &h3, sizeof(h2)) == 0, "rebuild: a fixed point parses the same");

	if (h->command == PPBPF_CMD_PROXY && (h->family == PPBPF_FAM_TCP4 || h->family == PPBPF_FAM_TCP6))
		check_other_version(h);
	if (h->version == 2 && exact)
		check_crc_build(data, h, &b);
}

/* ---- entry ----------------------------------------------------------------------------- */

/* The limits around a header's edges, on the whole input (rc: its verdict without limit). */
QUIET static void check_edges(const __u8 *buf, size_t size, int rc, const struct ppbpf_hdr *h)
{
	__u32 klen = size < KBUF ? (__u32)size : KBUF;
	long n = rc > 0 ? rc : size >= PPBPF_V2_FIXED_LEN && buf[0] == 0x0D ? 16 + (long)be16(buf + 14) : 0;
	long ms[] = { KMAX_MIN, KMAX_MIN + 1, PPBPF_V1_MAX_LEN - 1, PPBPF_V1_MAX_LEN, KMAX - 1, KMAX, n - 1, n, n + 1 };

	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		struct ppbpf_hdr hm;
		__u32 m = clamp_kmax(ms[i]);
		int rm;

		where.max = m;
		rm = ppbpf_parse_max(buf, klen, m, &hm);
		check_verdict(rm, &hm, klen);
		check_final_at_max(rm, &hm, klen, m);
		check_limit(rc, h, rm, &hm, m);
	}
}

/* Everything but the two parses of the whole input, which give the coverage. */
QUIET static void check_all(const __u8 *copy, size_t size, int rc, const struct ppbpf_hdr *h, __u32 kmax, int rk,
			    const struct ppbpf_hdr *hk)
{
	__u32 klen = size < KBUF ? (__u32)size : KBUF;
	struct variant v[2];

	where.k = size;
	where.max = PPBPF_V2_MAX_LEN;
	check_verdict(rc, h, (__u32)size);
	CHECK(rc != PPBPF_E_TOO_LARGE, "no too_large under the protocol's own limit");
	CHECK(rc > 0 || ppbpf_errname(rc) != NULL, "verdict: every status has a name");
	where.max = kmax;
	check_verdict(rk, hk, klen);
	CHECK(rk > 0 || ppbpf_errname(rk) != NULL, "verdict: every status has a name");
	check_limit(rc, h, rk, hk, kmax);

	/* Every prefix, without limit and with the kernel's. */
	v[0] = (struct variant){ .max = PPBPF_V2_MAX_LEN, .cap = (__u32)size, .full = rc };
	v[1] = (struct variant){ .max = kmax, .cap = klen, .full = rk };
	sweep(copy, size, v, 2);

	check_edges(copy, size, rc, h);
	if (rc > 0) {
		where.k = (size_t)rc;
		where.max = PPBPF_V2_MAX_LEN;
		if (h->version == 1)
			check_v1_shape(copy, h);
		else
			check_v2_shape(copy, h);
		check_rebuild(copy, h);
	}
}

int LLVMFuzzerTestOneInput(const __u8 *data, size_t size)
{
	struct ppbpf_hdr h, hk;
	__u32 kmax;
	__u8 *copy;
	int rc, rk;

	if (size > MAX_INPUT)
		return 0;
	copy = malloc(size ? size : 1); /* exact size: ASan reports any over-read */
	memcpy(copy, data, size);
	where.size = size;
	rc = ppbpf_parse(copy, (__u32)size, &h);
	/* What the kernel side would answer: at most 4096 bytes, a max in 15..4096. */
	kmax = pick_kmax(copy, size, rc);
	rk = ppbpf_parse_max(copy, (__u32)(size < KBUF ? size : KBUF), kmax, &hk);
	check_all(copy, size, rc, &h, kmax, rk, &hk);
	free(copy);
	return 0;
}
