// SPDX-License-Identifier: MIT
/*
 * The builder: exact bytes from the spec (HAProxy proxy-protocol.txt), every
 * refusal, the CRC32C flag against single-byte corruption, and a randomized
 * build -> parse round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <ppbpf/ppbpf.h>
#include "cases.h"
#include "guard.h"
#include "ref_crc32c.h"
#include "prng.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SIG_HEX "0D0A0D0A000D0A515549540A"
#define N_ROUND_TRIPS 20000

static __u8 out[PPBPF_V2_MAX_LEN + 64];

/* CRC32C a header of n bytes should carry in its last 4 bytes (read as zeros). */
static uint32_t ref_header_crc(const __u8 *hdr, size_t n)
{
	static __u8 tmp[4096];

	if (n > sizeof(tmp) || n < 4)
		fail_msg("ref_header_crc: %zu bytes", n);
	memcpy(tmp, hdr, n);
	memset(tmp + n - 4, 0, 4);
	return ref_crc32c(tmp, n);
}

/* Hex digits (spaces ignored) into dst; returns the byte count. */
static size_t unhex(const char *hex, __u8 *dst)
{
	size_t n = 0;
	int hi = -1;

	for (const char *p = hex; *p; p++) {
		int v = 0;

		if (*p == ' ')
			continue;
		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'A' && *p <= 'F')
			v = *p - 'A' + 10;
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else
			fail_msg("bad hex in test: %s", hex);
		if (hi < 0) {
			hi = v;
		} else {
			dst[n++] = (__u8)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0)
		fail_msg("odd hex in test: %s", hex);
	return n;
}

/* ---- exact bytes ------------------------------------------------------------ */

static const struct ppbpf_tlv alpn_noop[] = {
	{ PPBPF_TLV_ALPN, 2, (const __u8 *)"h2" },
	{ PPBPF_TLV_NOOP, 0, (const __u8 *)"" },
};

/* A header written out by hand: text (v1), or hex plus optional UNIX paths and CRC (v2). */
struct exact {
	const char *name;
	struct ppbpf_build b;
	const char *text;
	const char *hex;
	const char *src_path, *dst_path; /* appended as two zero-padded 108-byte fields */
	int crc;                          /* the last 4 bytes are the header's CRC32C */
};

#define V4_ADDRS .src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 2 }
#define V4_HEX "C0000201 C6336402"
#define V6_ADDRS                                                                                    \
	.src_addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 },                                           \
	.dst_addr = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1 }
#define V6_HEX "20010DB8000000000000000000000001 20010DB8000000000001000000000001"

static const struct exact exact[] = {
	{ "v1 TCP4",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4, V4_ADDRS, .src_port = 51000,
	    .dst_port = 443 },
	  .text = "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n" },
	{ "v1 TCP4 zeros",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4 },
	  .text = "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n" },
	{ "v1 TCP6 compressed",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP6, V6_ADDRS, .src_port = 0,
	    .dst_port = 65535 },
	  .text = "PROXY TCP6 2001:db8::1 2001:db8::1:0:0:1 0 65535\r\n" },
	{ "v1 TCP6 v4-mapped and ::",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP6,
	    .src_addr = { [10] = 0xff, 0xff, 192, 0, 2, 1 }, .src_port = 1, .dst_port = 2 },
	  .text = "PROXY TCP6 ::ffff:192.0.2.1 :: 1 2\r\n" },
	{ "v1 UNKNOWN ignores addresses",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNKNOWN, V4_ADDRS, .src_port = 9 },
	  .text = "PROXY UNKNOWN\r\n" },
	{ "v2 TCP4",
	  { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4, V4_ADDRS, .src_port = 51000,
	    .dst_port = 443 },
	  .hex = SIG_HEX "21 11 000C" V4_HEX "C738 01BB" },
	{ "v2 UDP4",
	  { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UDP4, V4_ADDRS, .src_port = 53,
	    .dst_port = 0x1234 },
	  .hex = SIG_HEX "21 12 000C" V4_HEX "0035 1234" },
	{ "v2 TCP6",
	  { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP6, V6_ADDRS, .src_port = 1,
	    .dst_port = 65535 },
	  .hex = SIG_HEX "21 21 0024" V6_HEX "0001 FFFF" },
	{ "v2 UDP6",
	  { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UDP6, V6_ADDRS, .src_port = 256,
	    .dst_port = 2 },
	  .hex = SIG_HEX "21 22 0024" V6_HEX "0100 0002" },
	{ "v2 LOCAL", { .version = 2, .command = PPBPF_CMD_LOCAL }, .hex = SIG_HEX "20 00 0000" },
	{ "v2 PROXY UNSPEC", { .version = 2, .command = PPBPF_CMD_PROXY }, .hex = SIG_HEX "21 00 0000" },
	{ "v2 LOCAL keeps its TCP4 block",
	  { .version = 2, .command = PPBPF_CMD_LOCAL, .family = PPBPF_FAM_TCP4, V4_ADDRS, .src_port = 1,
	    .dst_port = 2 },
	  .hex = SIG_HEX "20 11 000C" V4_HEX "0001 0002" },
	{ "v2 TCP4 with TLVs",
	  { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4, V4_ADDRS, .src_port = 51000,
	    .dst_port = 443, .tlvs = alpn_noop, .n_tlvs = 2 },
	  .hex = SIG_HEX "21 11 0014" V4_HEX "C738 01BB 01 0002 6832 04 0000" },
	{ "v2 UNIX stream",
	  { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNIX_STREAM,
	    .src_path = "/run/client.sock", .dst_path = "/run/haproxy.sock" },
	  .hex = SIG_HEX "21 31 00D8", .src_path = "/run/client.sock", .dst_path = "/run/haproxy.sock" },
	{ "v2 UNIX dgram",
	  { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNIX_DGRAM, .src_path = "a",
	    .dst_path = "" },
	  .hex = SIG_HEX "21 32 00D8", .src_path = "a", .dst_path = "" },
	{ "v2 LOCAL with CRC32C",
	  { .version = 2, .command = PPBPF_CMD_LOCAL, .flags = PPBPF_BUILD_CRC32C },
	  .hex = SIG_HEX "20 00 0007 03 0004 00000000", .crc = 1 },
	{ "v2 TCP4 with TLVs and CRC32C",
	  { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4, V4_ADDRS, .src_port = 51000,
	    .dst_port = 443, .tlvs = alpn_noop, .n_tlvs = 2, .flags = PPBPF_BUILD_CRC32C },
	  .hex = SIG_HEX "21 11 001B" V4_HEX "C738 01BB 01 0002 6832 04 0000 03 0004 00000000", .crc = 1 },
};

/* The expected bytes of an exact case into dst; returns the length. */
static size_t exact_bytes(const struct exact *e, __u8 *dst)
{
	size_t n;

	if (e->text) {
		n = strlen(e->text);
		memcpy(dst, e->text, n);
		return n;
	}
	n = unhex(e->hex, dst);
	if (e->src_path) {
		memset(dst + n, 0, 2 * PPBPF_UNIX_PATH_LEN);
		memcpy(dst + n, e->src_path, strlen(e->src_path));
		memcpy(dst + n + PPBPF_UNIX_PATH_LEN, e->dst_path, strlen(e->dst_path));
		n += 2 * PPBPF_UNIX_PATH_LEN;
	}
	if (e->crc) {
		uint32_t crc = ref_header_crc(dst, n);

		dst[n - 4] = (__u8)(crc >> 24);
		dst[n - 3] = (__u8)(crc >> 16);
		dst[n - 2] = (__u8)(crc >> 8);
		dst[n - 1] = (__u8)crc;
	}
	return n;
}

/* The reference CRC used for the expected bytes gives the published check value. */
static void test_reference_crc(void **state)
{
	(void)state;
	assert_int_equal(ref_crc32c((const __u8 *)"123456789", 9), 0xE3069283u);
}

/* Each hand-written header is built byte for byte, and the parser accepts it whole. */
static void test_exact_bytes(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(exact); i++) {
		__u8 want[512];
		size_t n = exact_bytes(&exact[i], want);
		struct ppbpf_hdr h;
		int rc;

		memset(out, 0xEE, 600);
		rc = ppbpf_build(&exact[i].b, out, sizeof(out));
		if (rc != (int)n)
			fail_msg("%s: built %d bytes, want %zu", exact[i].name, rc, n);
		if (memcmp(out, want, n))
			fail_msg("%s: bytes differ", exact[i].name);
		assert_int_equal(out[n], 0xEE);
		assert_int_equal(ppbpf_parse(guard_put(out, n), (__u32)n, &h), (int)n);
	}
}

/* cap one byte short gives -ENOSPC and writes nothing at or past cap; cap exact works. */
static void test_cap_boundary(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(exact); i++) {
		__u8 want[512];
		size_t n = exact_bytes(&exact[i], want);

		for (size_t cap = 0; cap < n; cap++) {
			int rc;

			memset(out, 0xEE, n + 16);
			rc = ppbpf_build(&exact[i].b, out, cap);
			if (rc != -ENOSPC)
				fail_msg("%s with cap %zu: got %d, want -ENOSPC", exact[i].name, cap, rc);
			for (size_t k = cap; k < n + 16; k++)
				if (out[k] != 0xEE)
					fail_msg("%s with cap %zu: wrote byte %zu", exact[i].name, cap, k);
		}
		memset(out, 0xEE, n + 16);
		assert_int_equal(ppbpf_build(&exact[i].b, out, n), (int)n);
		assert_memory_equal(out, want, n);
		assert_int_equal(out[n], 0xEE);
	}
}

/* ---- refusals ------------------------------------------------------------------ */

static const struct ppbpf_tlv one_tlv[] = { { PPBPF_TLV_ALPN, 2, (const __u8 *)"h2" } };

/* Impossible combinations, each refused with -EINVAL. */
static const struct {
	const char *name;
	struct ppbpf_build b;
} invalid[] = {
	{ "version 0", { .version = 0, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4 } },
	{ "version 3", { .version = 3, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4 } },
	{ "version 255", { .version = 255, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4 } },
	{ "v1 UDP4", { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UDP4 } },
	{ "v1 UDP6", { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UDP6 } },
	{ "v1 UNIX stream", { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNIX_STREAM } },
	{ "v1 UNIX dgram", { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNIX_DGRAM } },
	{ "v1 UNSPEC", { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNSPEC } },
	{ "v1 family 8", { .version = 1, .command = PPBPF_CMD_PROXY, .family = 8 } },
	{ "v1 LOCAL", { .version = 1, .command = PPBPF_CMD_LOCAL, .family = PPBPF_FAM_TCP4 } },
	{ "v1 LOCAL UNKNOWN", { .version = 1, .command = PPBPF_CMD_LOCAL, .family = PPBPF_FAM_UNKNOWN } },
	{ "v1 command 2", { .version = 1, .command = 2, .family = PPBPF_FAM_TCP4 } },
	{ "v1 with a TLV",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4, .tlvs = one_tlv, .n_tlvs = 1 } },
	{ "v1 UNKNOWN with a TLV",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNKNOWN, .tlvs = one_tlv, .n_tlvs = 1 } },
	{ "v1 with CRC32C",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4, .flags = PPBPF_BUILD_CRC32C } },
	{ "v1 UNKNOWN with CRC32C",
	  { .version = 1, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNKNOWN, .flags = PPBPF_BUILD_CRC32C } },
	{ "v2 UNKNOWN", { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_UNKNOWN } },
	{ "v2 LOCAL UNKNOWN", { .version = 2, .command = PPBPF_CMD_LOCAL, .family = PPBPF_FAM_UNKNOWN } },
	{ "v2 family 8", { .version = 2, .command = PPBPF_CMD_PROXY, .family = 8 } },
	{ "v2 family 255", { .version = 2, .command = PPBPF_CMD_PROXY, .family = 255 } },
	{ "v2 command 2", { .version = 2, .command = 2, .family = PPBPF_FAM_TCP4 } },
	{ "v2 command 15", { .version = 2, .command = 15, .family = PPBPF_FAM_TCP4 } },
};

/* Every impossible combination is -EINVAL, with room to spare and nothing written. */
static void test_invalid(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(invalid); i++) {
		int rc;

		memset(out, 0xEE, 256);
		rc = ppbpf_build(&invalid[i].b, out, sizeof(out));
		if (rc != -EINVAL)
			fail_msg("%s: got %d, want -EINVAL", invalid[i].name, rc);
		for (int k = 0; k < 256; k++)
			if (out[k] != 0xEE)
				fail_msg("%s: wrote byte %d", invalid[i].name, k);
	}
}

/* A v2 header of exactly 65535 payload bytes builds and parses; one more is -EMSGSIZE. */
static void test_payload_limit(void **state)
{
	static __u8 value[65535];
	struct ppbpf_tlv t = { 0xE5, 0, value };
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_LOCAL, .tlvs = &t, .n_tlvs = 1 };
	struct ppbpf_hdr h;

	(void)state;
	memset(value, 0x5A, sizeof(value));
	t.len = 65535 - 3; /* LOCAL UNSPEC: the payload is this one TLV */
	assert_int_equal(ppbpf_build(&b, out, sizeof(out)), PPBPF_V2_MAX_LEN);
	assert_memory_equal(out + 14, "\xFF\xFF", 2);
	assert_int_equal(ppbpf_parse(guard_put(out, PPBPF_V2_MAX_LEN), PPBPF_V2_MAX_LEN, &h), PPBPF_V2_MAX_LEN);
	t.len++;
	assert_int_equal(ppbpf_build(&b, out, sizeof(out)), -EMSGSIZE);

	b.flags = PPBPF_BUILD_CRC32C; /* the CRC32C TLV's 7 bytes count too */
	t.len = 65535 - 3 - 7;
	assert_int_equal(ppbpf_build(&b, out, sizeof(out)), PPBPF_V2_MAX_LEN);
	assert_int_equal(ppbpf_parse(guard_put(out, PPBPF_V2_MAX_LEN), PPBPF_V2_MAX_LEN, &h), PPBPF_V2_MAX_LEN);
	t.len++;
	assert_int_equal(ppbpf_build(&b, out, sizeof(out)), -EMSGSIZE);

	b.flags = 0; /* the address block counts too */
	b.command = PPBPF_CMD_PROXY;
	b.family = PPBPF_FAM_UNIX_STREAM;
	t.len = 65535 - 3 - 216;
	assert_int_equal(ppbpf_build(&b, out, sizeof(out)), PPBPF_V2_MAX_LEN);
	t.len++;
	assert_int_equal(ppbpf_build(&b, out, sizeof(out)), -EMSGSIZE);
}

/* Many TLVs whose lengths only add up past 65535 are refused too. */
static void test_payload_limit_many_tlvs(void **state)
{
	static __u8 value[1000];
	static struct ppbpf_tlv tlvs[70];
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_LOCAL, .tlvs = tlvs, .n_tlvs = 70 };

	(void)state;
	for (int i = 0; i < 70; i++)
		tlvs[i] = (struct ppbpf_tlv){ 0xE6, sizeof(value), value }; /* 70 * 1003 = 70210 bytes */
	assert_int_equal(ppbpf_build(&b, out, sizeof(out)), -EMSGSIZE);
	b.n_tlvs = 65; /* 65195 bytes */
	assert_int_equal(ppbpf_build(&b, out, sizeof(out)), 16 + 65 * 1003);
}

/* ppbpf_build_ssl: exact bytes, the 65535-byte limit, and the exact cap boundary. */
static void test_build_ssl(void **state)
{
	static __u8 value[65535];
	const struct ppbpf_tlv subs[] = {
		{ PPBPF_SSL_VERSION, 7, (const __u8 *)"TLSv1.3" },
		{ PPBPF_SSL_CN, 1, (const __u8 *)"x" },
	};
	__u8 want[32];
	size_t n = unhex("05 12345678 21 0007 544C5376312E33 22 0001 78", want);
	struct ppbpf_tlv big = { PPBPF_SSL_CLIENT_CERT, 0, value };

	(void)state;
	memset(out, 0xEE, 64);
	assert_int_equal(ppbpf_build_ssl(0x05, 0x12345678u, subs, 2, out, n), (int)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(out[n], 0xEE);
	for (size_t cap = 0; cap < n; cap++)
		assert_int_equal(ppbpf_build_ssl(0x05, 0x12345678u, subs, 2, out, cap), -ENOSPC);
	assert_int_equal(ppbpf_build_ssl(0, 0, NULL, 0, out, 5), 5);
	assert_memory_equal(out, "\0\0\0\0\0", 5);

	big.len = 65535 - 5 - 3;
	assert_int_equal(ppbpf_build_ssl(1, 0, &big, 1, out, sizeof(out)), 65535);
	big.len++;
	assert_int_equal(ppbpf_build_ssl(1, 0, &big, 1, out, sizeof(out)), -EMSGSIZE);
}

/* ---- CRC32C flag --------------------------------------------------------------- */

/* What ppbpf_parse says after byte i of the flip header is inverted (XOR 0xFF). */
struct flip {
	unsigned int from, to; /* byte positions [from, to] */
	int rc;
};

/*
 * v2 PROXY TCP4 + ALPN "h2" + CRC32C: 16 fixed bytes, 12 of addresses at 16,
 * ALPN TLV at 28 (type, length 2, "h2"), CRC32C TLV at 33 (type, length 4, value at 36).
 */
static const struct flip flips[] = {
	{ 0, 11, PPBPF_E_NOT_PROXY },       /* signature */
	{ 12, 12, PPBPF_E_V2_VERSION },     /* 0x21 -> 0xDE */
	{ 13, 13, PPBPF_E_V2_FAMILY },      /* 0x11 -> 0xEE */
	{ 14, 15, PPBPF_E_INCOMPLETE },     /* the length grows past the 40 bytes given */
	{ 16, 27, PPBPF_E_CRC32C },         /* addresses and ports */
	{ 28, 28, PPBPF_E_CRC32C },         /* ALPN type becomes 0xFE: still covered */
	{ 29, 30, PPBPF_E_TLV_TRUNCATED },  /* ALPN length */
	{ 31, 32, PPBPF_E_CRC32C },         /* ALPN value */
	{ 34, 35, PPBPF_E_TLV_TRUNCATED },  /* CRC32C length */
	{ 36, 39, PPBPF_E_CRC32C },         /* CRC32C value */
};

/* Position of the CRC32C TLV's type byte in the flip header. */
#define FLIP_CRC_TYPE 33

static const struct ppbpf_tlv flip_tlvs[] = { { PPBPF_TLV_ALPN, 2, (const __u8 *)"h2" } };
static const struct ppbpf_build flip_hdr = {
	.version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4, V4_ADDRS,
	.src_port = 51000, .dst_port = 443, .tlvs = flip_tlvs, .n_tlvs = 1, .flags = PPBPF_BUILD_CRC32C,
};

/* Inverting any one byte of a CRC-protected header is caught, each with the expected status. */
static void test_crc_flip_each_byte(void **state)
{
	__u8 hdr[64], bad[64];
	struct ppbpf_hdr h;
	int n;

	(void)state;
	n = ppbpf_build(&flip_hdr, hdr, sizeof(hdr));
	assert_int_equal(n, 40);
	assert_int_equal(ppbpf_parse(guard_put(hdr, 40), 40, &h), 40);
	for (size_t f = 0; f < ARRAY_SIZE(flips); f++) {
		for (unsigned int i = flips[f].from; i <= flips[f].to; i++) {
			int rc;

			memcpy(bad, hdr, 40);
			bad[i] ^= 0xFF;
			rc = ppbpf_parse(guard_put(bad, 40), 40, &h);
			if (rc != flips[f].rc)
				fail_msg("byte %u inverted: got %d (%s), want %s", i, rc, ppbpf_errname(rc),
					 ppbpf_errname(flips[f].rc));
		}
	}
}

/*
 * The one byte the CRC cannot guard is its own TLV's type: changed, the TLV is
 * an unknown one and the header has no checksum (a limit of the protocol). The
 * header then parses, but carries no CRC32C TLV that could be trusted.
 */
static void test_crc_flip_own_type(void **state)
{
	__u8 hdr[64];
	struct ppbpf_tlv t;
	struct ppbpf_hdr h;
	const __u8 *buf;

	(void)state;
	assert_int_equal(ppbpf_build(&flip_hdr, hdr, sizeof(hdr)), 40);
	assert_int_equal(hdr[FLIP_CRC_TYPE], PPBPF_TLV_CRC32C);
	hdr[FLIP_CRC_TYPE] ^= 0xFF;
	buf = guard_put(hdr, 40);
	assert_int_equal(ppbpf_parse(buf, 40, &h), 40);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_CRC32C, &t), 0);
}

/* Every single-bit error in the covered data (addresses, values, checksum) is PPBPF_E_CRC32C. */
static void test_crc_single_bits(void **state)
{
	static const unsigned int data[] = { 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 31, 32, 36, 37, 38, 39 };
	__u8 hdr[64], bad[64];
	struct ppbpf_hdr h;

	(void)state;
	assert_int_equal(ppbpf_build(&flip_hdr, hdr, sizeof(hdr)), 40);
	for (size_t k = 0; k < ARRAY_SIZE(data); k++) {
		for (int bit = 0; bit < 8; bit++) {
			int rc;

			memcpy(bad, hdr, 40);
			bad[data[k]] ^= (__u8)(1u << bit);
			rc = ppbpf_parse(guard_put(bad, 40), 40, &h);
			if (rc != PPBPF_E_CRC32C)
				fail_msg("byte %u bit %d: got %s", data[k], bit, ppbpf_errname(rc));
		}
	}
}

/* ---- round trip ------------------------------------------------------------------- */

/* What was asked of the builder, to compare the parse against. */
struct gen {
	struct ppbpf_build b;
	struct ppbpf_tlv tlvs[8];
	__u8 values[8][300];
	int ssl[8];          /* this TLV is an SSL TLV built with: */
	__u8 client[8];
	__u32 verify[8];
	unsigned int n_subs[8];
	struct ppbpf_tlv subs[8][6];
	__u8 subvals[8][300];
};

/* Families valid for each version. */
static const __u8 v1_fams[] = { PPBPF_FAM_TCP4, PPBPF_FAM_TCP6, PPBPF_FAM_UNKNOWN };
static const __u8 v2_fams[] = { PPBPF_FAM_UNSPEC, PPBPF_FAM_TCP4, PPBPF_FAM_TCP6, PPBPF_FAM_UDP4,
				PPBPF_FAM_UDP6, PPBPF_FAM_UNIX_STREAM, PPBPF_FAM_UNIX_DGRAM };

/* The v2 family/transport byte of each family (proxy-protocol.txt 2.2). */
static int v2_fam_byte(int fam)
{
	switch (fam) {
	case PPBPF_FAM_TCP4: return 0x11;
	case PPBPF_FAM_UDP4: return 0x12;
	case PPBPF_FAM_TCP6: return 0x21;
	case PPBPF_FAM_UDP6: return 0x22;
	case PPBPF_FAM_UNIX_STREAM: return 0x31;
	case PPBPF_FAM_UNIX_DGRAM: return 0x32;
	default: return 0x00;
	}
}

/* Size of the v2 address block of a family. */
static size_t v2_block(int fam)
{
	switch (v2_fam_byte(fam) >> 4) {
	case 1: return 12;
	case 2: return 36;
	case 3: return 216;
	default: return 0;
	}
}

/* Random address bytes, with runs of zero bytes/groups so v1 text compresses. */
static void random_addr(struct prng *r, __u8 a[16])
{
	prng_fill(r, a, 16);
	if (prng_below(r, 2)) {
		unsigned int start = prng_below(r, 8), len = 1 + prng_below(r, 8 - start);

		memset(a + 2 * start, 0, 2 * len);
	}
	if (prng_below(r, 8) == 0) { /* v4-mapped */
		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
	}
}

/* A random SSL TLV value of at most 300 bytes for TLV i, written to v; returns its length. */
static __u16 random_ssl(struct prng *r, struct gen *g, int i, __u8 *v)
{
	__u8 *sv = g->subvals[i];
	size_t room = 300 - PPBPF_SSL_HEAD_LEN;
	unsigned int want = prng_below(r, 7), k;
	int len;

	g->ssl[i] = 1;
	g->client[i] = (__u8)prng_next(r);
	g->verify[i] = (__u32)prng_next(r);
	for (k = 0; k < want && room >= PPBPF_TLV_HDR_LEN; k++) {
		size_t most = room - PPBPF_TLV_HDR_LEN < 120 ? room - PPBPF_TLV_HDR_LEN : 120;
		__u16 n = (__u16)prng_below(r, (uint32_t)most + 1);

		g->subs[i][k] = (struct ppbpf_tlv){ (__u8)prng_next(r), n, sv };
		prng_fill(r, sv, n);
		sv += n;
		room -= PPBPF_TLV_HDR_LEN + n;
	}
	g->n_subs[i] = k;
	len = ppbpf_build_ssl(g->client[i], g->verify[i], g->subs[i], k, v, 300);
	if (len < PPBPF_SSL_HEAD_LEN)
		fail_msg("ppbpf_build_ssl: %d", len);
	return (__u16)len;
}

/* Random TLVs for v2: types other than CRC32C, valid UNIQUE_ID and SSL values, lengths 0..300. */
static void random_tlvs(struct prng *r, struct gen *g)
{
	unsigned int n = prng_below(r, 9);

	for (unsigned int i = 0; i < n; i++) {
		__u8 *v = g->values[i];
		__u8 type;
		__u16 len;

		g->ssl[i] = 0;
		do
			type = (__u8)prng_next(r);
		while (type == PPBPF_TLV_CRC32C);
		if (prng_below(r, 6) == 0)
			type = PPBPF_TLV_SSL;
		if (type == PPBPF_TLV_SSL) {
			len = random_ssl(r, g, (int)i, v);
		} else {
			len = (__u16)prng_below(r, type == PPBPF_TLV_UNIQUE_ID ? PPBPF_UNIQUE_ID_MAX + 1 : 301);
			prng_fill(r, v, len);
		}
		g->tlvs[i] = (struct ppbpf_tlv){ type, len, v };
	}
	g->b.tlvs = g->tlvs;
	g->b.n_tlvs = n;
}

/* A random valid struct ppbpf_build. */
static void random_build(struct prng *r, struct gen *g)
{
	struct ppbpf_build *b = &g->b;

	memset(b, 0, sizeof(*b));
	b->version = (__u8)(1 + prng_below(r, 2));
	if (b->version == 1) {
		b->command = PPBPF_CMD_PROXY;
		b->family = v1_fams[prng_below(r, ARRAY_SIZE(v1_fams))];
	} else {
		b->command = (__u8)prng_below(r, 2);
		b->family = v2_fams[prng_below(r, ARRAY_SIZE(v2_fams))];
	}
	random_addr(r, b->src_addr);
	random_addr(r, b->dst_addr);
	b->src_port = (__u16)(prng_below(r, 4) ? prng_next(r) : prng_below(r, 2) * 65535);
	b->dst_port = (__u16)prng_next(r);
	if (b->family == PPBPF_FAM_UNIX_STREAM || b->family == PPBPF_FAM_UNIX_DGRAM) {
		memset(b->src_path, 0, sizeof(b->src_path));
		memset(b->dst_path, 0, sizeof(b->dst_path));
		prng_fill(r, b->src_path, prng_below(r, PPBPF_UNIX_PATH_LEN + 1));
		prng_fill(r, b->dst_path, prng_below(r, PPBPF_UNIX_PATH_LEN + 1));
	}
	if (b->version == 2) {
		random_tlvs(r, g);
		if (prng_below(r, 2))
			b->flags = PPBPF_BUILD_CRC32C;
	}
}

/* The length the v2 header must have: fixed part, address block, TLVs, CRC32C TLV. */
static size_t v2_expected_len(const struct gen *g)
{
	size_t n = PPBPF_V2_FIXED_LEN + v2_block(g->b.family);

	for (unsigned int i = 0; i < g->b.n_tlvs; i++)
		n += PPBPF_TLV_HDR_LEN + g->tlvs[i].len;
	return n + (g->b.flags & PPBPF_BUILD_CRC32C ? 7 : 0);
}

/* Family, addresses and ports the parser reports against what was built. */
static void check_addrs(const struct gen *g, const struct ppbpf_hdr *h)
{
	static const __u8 zero[16];
	const struct ppbpf_build *b = &g->b;
	int fam = b->version == 2 && b->command == PPBPF_CMD_LOCAL ? PPBPF_FAM_UNSPEC : b->family;
	size_t alen = fam == PPBPF_FAM_TCP4 || fam == PPBPF_FAM_UDP4 ? 4
		      : fam == PPBPF_FAM_TCP6 || fam == PPBPF_FAM_UDP6 ? 16 : 0;

	assert_int_equal(h->family, fam);
	assert_memory_equal(h->src_addr, b->src_addr, alen);
	assert_memory_equal(h->dst_addr, b->dst_addr, alen);
	assert_memory_equal(h->src_addr + alen, zero, 16 - alen);
	assert_memory_equal(h->dst_addr + alen, zero, 16 - alen);
	assert_int_equal(h->src_port, alen ? b->src_port : 0);
	assert_int_equal(h->dst_port, alen ? b->dst_port : 0);
}

/* An SSL TLV read back: head, then the sub-TLVs in order. */
static void check_ssl(const struct gen *g, int i, const struct ppbpf_tlv *t)
{
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv sub;
	__u8 client;
	__u32 verify;

	assert_int_equal(ppbpf_ssl_head(t, &client, &verify), 0);
	assert_int_equal(client, g->client[i]);
	assert_int_equal(verify, g->verify[i]);
	assert_int_equal(ppbpf_ssl_iter_init(&it, t), 0);
	for (unsigned int k = 0; k < g->n_subs[i]; k++) {
		assert_int_equal(ppbpf_tlv_next(&it, &sub), 1);
		assert_int_equal(sub.type, g->subs[i][k].type);
		assert_int_equal(sub.len, g->subs[i][k].len);
		assert_memory_equal(sub.value, g->subs[i][k].value, sub.len);
	}
	assert_int_equal(ppbpf_tlv_next(&it, &sub), 0);
}

/* The TLV list read back: what was given, then the CRC32C TLV with the right checksum. */
static void check_tlvs(const struct gen *g, const __u8 *buf, const struct ppbpf_hdr *h)
{
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;

	assert_int_equal(h->tlv_off, g->b.version == 2 ? PPBPF_V2_FIXED_LEN + v2_block(g->b.family) : 0);
	ppbpf_tlv_iter_init(&it, buf, h);
	for (unsigned int i = 0; i < g->b.n_tlvs; i++) {
		assert_int_equal(ppbpf_tlv_next(&it, &t), 1);
		assert_int_equal(t.type, g->tlvs[i].type);
		assert_int_equal(t.len, g->tlvs[i].len);
		assert_memory_equal(t.value, g->tlvs[i].value, t.len);
		if (g->ssl[i])
			check_ssl(g, (int)i, &t);
	}
	if (g->b.flags & PPBPF_BUILD_CRC32C) {
		uint32_t crc = ref_header_crc(buf, h->header_len);

		assert_int_equal(ppbpf_tlv_next(&it, &t), 1);
		assert_int_equal(t.type, PPBPF_TLV_CRC32C);
		assert_int_equal(t.len, 4);
		assert_int_equal((uint32_t)t.value[0] << 24 | t.value[1] << 16 | t.value[2] << 8 | t.value[3], crc);
	}
	assert_int_equal(ppbpf_tlv_next(&it, &t), 0);
}

/* Check one parsed round trip against what was built. */
static void check_round_trip(const struct gen *g, const __u8 *buf, int len, const struct ppbpf_hdr *h)
{
	const struct ppbpf_build *b = &g->b;

	assert_int_equal(h->header_len, len);
	assert_int_equal(h->version, b->version);
	assert_int_equal(h->command, b->command);
	check_addrs(g, h);
	if (b->version == 1) {
		assert_true(len <= PPBPF_V1_MAX_LEN);
		assert_memory_equal(buf + len - 2, "\r\n", 2);
		assert_int_equal(h->tlv_len, 0);
		return;
	}
	assert_int_equal(len, v2_expected_len(g));
	assert_int_equal(h->fam_byte, v2_fam_byte(b->family));
	assert_int_equal(h->addr_off, PPBPF_V2_FIXED_LEN);
	if (b->family == PPBPF_FAM_UNIX_STREAM || b->family == PPBPF_FAM_UNIX_DGRAM) {
		assert_memory_equal(buf + h->addr_off, b->src_path, PPBPF_UNIX_PATH_LEN);
		assert_memory_equal(buf + h->addr_off + PPBPF_UNIX_PATH_LEN, b->dst_path, PPBPF_UNIX_PATH_LEN);
	}
	check_tlvs(g, buf, h);
}

/* Random valid builds parse back, at a guard page, to exactly what was asked for. */
static void test_round_trip(void **state)
{
	static struct gen g;
	struct prng r = { 0x9000 };
	int with_crc = 0, with_ssl = 0, v1 = 0;

	(void)state;
	for (int t = 0; t < N_ROUND_TRIPS; t++) {
		struct ppbpf_hdr h;
		const __u8 *buf;
		int len, rc;

		random_build(&r, &g);
		memset(out, 0xEE, 4096);
		len = ppbpf_build(&g.b, out, 4096);
		if (len <= 0)
			fail_msg("round trip %d: build gave %d", t, len);
		assert_int_equal(out[len], 0xEE);
		buf = guard_put(out, (size_t)len);
		rc = ppbpf_parse(buf, (__u32)len, &h);
		if (rc != len)
			fail_msg("round trip %d (v%d family %d): parse gave %d (%s), built %d", t, g.b.version,
				 g.b.family, rc, ppbpf_errname(rc), len);
		check_round_trip(&g, buf, len, &h);
		v1 += g.b.version == 1;
		with_crc += !!(g.b.flags & PPBPF_BUILD_CRC32C);
		for (unsigned int i = 0; i < g.b.n_tlvs; i++)
			with_ssl += g.ssl[i];
	}
	/* the generator reached every kind of input often */
	assert_true(v1 > N_ROUND_TRIPS / 4 && with_crc > N_ROUND_TRIPS / 8 && with_ssl > N_ROUND_TRIPS / 8);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_crc),
		cmocka_unit_test(test_exact_bytes),
		cmocka_unit_test(test_cap_boundary),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_payload_limit),
		cmocka_unit_test(test_payload_limit_many_tlvs),
		cmocka_unit_test(test_build_ssl),
		cmocka_unit_test(test_crc_flip_each_byte),
		cmocka_unit_test(test_crc_flip_own_type),
		cmocka_unit_test(test_crc_single_bits),
		cmocka_unit_test(test_round_trip),
	};

	return RUN_UNIT_CASES(argc, argv, tests);
}
