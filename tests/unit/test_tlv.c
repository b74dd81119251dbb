// SPDX-License-Identifier: MIT
/*
 * TLVs of parsed v2 headers: iteration, lookup, names, and decoding of the
 * SSL and cloud TLVs. Headers are built, then parsed where they end at a
 * guard page, so every value read comes from the parsed buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <ppbpf/ppbpf.h>
#include "cases.h"
#include "guard.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Offset of the first TLV of a v2 TCP4 header: 16 fixed bytes + 12 of addresses. */
#define TCP4_TLV_OFF (16 + 12)

/* Build a v2 PROXY TCP4 header carrying tlvs, place it at the guard page and parse it. */
static const __u8 *build_parse(const struct ppbpf_tlv *tlvs, unsigned int n, struct ppbpf_hdr *h)
{
	static __u8 tmp[16384];
	struct ppbpf_build b = {
		.version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
		.src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 2 },
		.src_port = 51000, .dst_port = 443, .tlvs = tlvs, .n_tlvs = n,
	};
	int len = ppbpf_build(&b, tmp, sizeof(tmp));
	const __u8 *buf;

	if (len <= 0)
		fail_msg("ppbpf_build: %d", len);
	buf = guard_put(tmp, (size_t)len);
	if (ppbpf_parse(buf, (__u32)len, h) != len)
		fail_msg("ppbpf_parse of a built header: %s", ppbpf_errname(ppbpf_parse(buf, (__u32)len, h)));
	return buf;
}

/* One TLV as expected: type, length, and value at a known offset of buf. */
static void expect_tlv(const struct ppbpf_tlv *got, __u8 type, const void *value, __u16 len, const __u8 *at)
{
	assert_int_equal(got->type, type);
	assert_int_equal(got->len, len);
	assert_ptr_equal(got->value, at);
	if (len)
		assert_memory_equal(got->value, value, len);
}

/* ---- iteration and lookup ---------------------------------------------------- */

/* TLVs come back in the order written, unknown types included, values in place. */
static void test_order_and_unknown_kept(void **state)
{
	static __u8 big[300], uid[PPBPF_UNIQUE_ID_MAX];
	const struct ppbpf_tlv tlvs[] = {
		{ PPBPF_TLV_ALPN, 2, (const __u8 *)"h2" },
		{ 0x7F, 3, (const __u8 *)"xyz" },
		{ PPBPF_TLV_NOOP, 0, NULL }, /* an empty value may be NULL (UBSan checks the builder) */
		{ PPBPF_TLV_AUTHORITY, 11, (const __u8 *)"example.com" },
		{ 0xFF, sizeof(big), big },
		{ PPBPF_TLV_NETNS, 3, (const __u8 *)"ns1" },
		{ PPBPF_TLV_UNIQUE_ID, sizeof(uid), uid },
		{ 0x00, 1, (const __u8 *)"z" },
	};
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;
	struct ppbpf_hdr h;
	const __u8 *buf;
	size_t off = TCP4_TLV_OFF;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (__u8)(i * 7 + 1);
	memset(uid, 'u', sizeof(uid));
	buf = build_parse(tlvs, ARRAY_SIZE(tlvs), &h);
	assert_int_equal(h.tlv_off, TCP4_TLV_OFF);
	ppbpf_tlv_iter_init(&it, buf, &h);
	for (size_t i = 0; i < ARRAY_SIZE(tlvs); i++) {
		assert_int_equal(ppbpf_tlv_next(&it, &t), 1);
		expect_tlv(&t, tlvs[i].type, tlvs[i].value, tlvs[i].len, buf + off + PPBPF_TLV_HDR_LEN);
		off += PPBPF_TLV_HDR_LEN + tlvs[i].len;
	}
	assert_int_equal(off, h.header_len);
	assert_int_equal(ppbpf_tlv_next(&it, &t), 0);
	assert_int_equal(ppbpf_tlv_next(&it, &t), 0); /* the end is sticky */
}

/* find returns the first of duplicates, and 0 for an absent type. */
static void test_find_first_and_absent(void **state)
{
	const struct ppbpf_tlv tlvs[] = {
		{ PPBPF_TLV_NOOP, 1, (const __u8 *)"-" },
		{ PPBPF_TLV_ALPN, 1, (const __u8 *)"a" },
		{ PPBPF_TLV_AUTHORITY, 1, (const __u8 *)"x" },
		{ PPBPF_TLV_ALPN, 1, (const __u8 *)"b" },
		{ 0x90, 2, (const __u8 *)"p1" },
		{ 0x90, 2, (const __u8 *)"p2" },
	};
	struct ppbpf_tlv t;
	struct ppbpf_hdr h;
	const __u8 *buf;

	(void)state;
	buf = build_parse(tlvs, ARRAY_SIZE(tlvs), &h);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_ALPN, &t), 1);
	expect_tlv(&t, PPBPF_TLV_ALPN, "a", 1, buf + TCP4_TLV_OFF + 4 + 3);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_AUTHORITY, &t), 1);
	expect_tlv(&t, PPBPF_TLV_AUTHORITY, "x", 1, buf + TCP4_TLV_OFF + 2 * 4 + 3);
	assert_int_equal(ppbpf_tlv_find(buf, &h, 0x90, &t), 1);
	expect_tlv(&t, 0x90, "p1", 2, buf + TCP4_TLV_OFF + 4 * 4 + 3);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_NOOP, &t), 1);
	expect_tlv(&t, PPBPF_TLV_NOOP, "-", 1, buf + TCP4_TLV_OFF + 3);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_SSL, &t), 0);
	assert_int_equal(ppbpf_tlv_find(buf, &h, 0x91, &t), 0);
}

/* Headers with no TLVs (v2 without, v1) iterate as empty and find nothing. */
static void test_no_tlvs(void **state)
{
	static const char v1[] = "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n";
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;
	struct ppbpf_hdr h;
	const __u8 *buf;

	(void)state;
	buf = build_parse(NULL, 0, &h);
	assert_int_equal(h.tlv_len, 0);
	ppbpf_tlv_iter_init(&it, buf, &h);
	assert_int_equal(ppbpf_tlv_next(&it, &t), 0);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_NOOP, &t), 0);

	buf = guard_put(v1, sizeof(v1) - 1);
	assert_int_equal(ppbpf_parse(buf, sizeof(v1) - 1, &h), (int)sizeof(v1) - 1);
	ppbpf_tlv_iter_init(&it, buf, &h);
	assert_int_equal(ppbpf_tlv_next(&it, &t), 0);
	assert_int_equal(ppbpf_tlv_find(buf, &h, 0, &t), 0);
}

/* A LOCAL header with family UNSPEC: its TLVs start right after the 16 fixed bytes. */
static void test_local_unspec_tlvs(void **state)
{
	static __u8 tmp[64];
	const struct ppbpf_tlv tlvs[] = { { PPBPF_TLV_AUTHORITY, 4, (const __u8 *)"host" } };
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_LOCAL, .tlvs = tlvs, .n_tlvs = 1 };
	struct ppbpf_tlv t;
	struct ppbpf_hdr h;
	const __u8 *buf;
	int len;

	(void)state;
	len = ppbpf_build(&b, tmp, sizeof(tmp));
	assert_int_equal(len, 16 + 3 + 4);
	buf = guard_put(tmp, (size_t)len);
	assert_int_equal(ppbpf_parse(buf, (__u32)len, &h), len);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_AUTHORITY, &t), 1);
	expect_tlv(&t, PPBPF_TLV_AUTHORITY, "host", 4, buf + 16 + 3);
}

/* ---- malformed lists ----------------------------------------------------------- */

struct bad_list {
	const char *name;
	__u8 bytes[8];
	size_t n;
	int good; /* well-formed TLVs before the bad one */
};

/* Lists ppbpf_parse would refuse, iterated directly: -EBADMSG where they break. */
static const struct bad_list bad_lists[] = {
	{ "2-byte remainder", { 0x01, 0x00 }, 2, 0 },
	{ "1-byte remainder", { 0x01 }, 1, 0 },
	{ "TLV then 2 bytes", { 0x01, 0x00, 0x01, 'a', 0x02, 0x00 }, 6, 1 },
	{ "length overruns by 1", { 0x01, 0x00, 0x03, 'a', 'b' }, 5, 0 },
	{ "length 0xFFFF", { 0x01, 0xFF, 0xFF, 'a' }, 4, 0 },
	{ "high length byte", { 0x01, 0x01, 0x00, 'a', 'b', 'c' }, 6, 0 },
	{ "TLV then overrun", { 0x04, 0x00, 0x00, 0x02, 0x00, 0x02, 'a' }, 7, 1 },
};

/* ppbpf_tlv_next reports -EBADMSG at a short remainder or a length overrun, reading nothing past the end. */
static void test_malformed_lists(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad_lists); i++) {
		const struct bad_list *c = &bad_lists[i];
		const __u8 *buf = guard_put(c->bytes, c->n);
		struct ppbpf_hdr h = { .tlv_off = 0, .tlv_len = (__u32)c->n };
		struct ppbpf_tlv_iter it;
		struct ppbpf_tlv t;
		int rc;

		ppbpf_tlv_iter_init(&it, buf, &h);
		for (int k = 0; k < c->good; k++)
			if (ppbpf_tlv_next(&it, &t) != 1)
				fail_msg("%s: TLV %d should be good", c->name, k);
		rc = ppbpf_tlv_next(&it, &t);
		if (rc != -EBADMSG)
			fail_msg("%s: got %d, want -EBADMSG", c->name, rc);
		rc = ppbpf_tlv_find(buf, &h, 0xAB, &t);
		if (rc != -EBADMSG)
			fail_msg("%s: find got %d, want -EBADMSG", c->name, rc);
	}
}

/* A list that fits its bytes exactly is fine right up to the last byte. */
static void test_exact_fit(void **state)
{
	static const __u8 list[] = { 0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x00 };
	const __u8 *buf = guard_put(list, sizeof(list));
	struct ppbpf_hdr h = { .tlv_off = 0, .tlv_len = sizeof(list) };
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;

	(void)state;
	ppbpf_tlv_iter_init(&it, buf, &h);
	assert_int_equal(ppbpf_tlv_next(&it, &t), 1);
	expect_tlv(&t, 0x01, "h2", 2, buf + 3);
	assert_int_equal(ppbpf_tlv_next(&it, &t), 1);
	expect_tlv(&t, 0x04, NULL, 0, buf + 8);
	assert_int_equal(ppbpf_tlv_next(&it, &t), 0);
}

/* ---- SSL --------------------------------------------------------------------- */

/* Build an SSL TLV value into out; fails the test on error. */
static __u16 build_ssl(__u8 client, __u32 verify, const struct ppbpf_tlv *subs, unsigned int n, __u8 *out,
		       size_t cap)
{
	int len = ppbpf_build_ssl(client, verify, subs, n, out, cap);

	if (len < PPBPF_SSL_HEAD_LEN)
		fail_msg("ppbpf_build_ssl: %d", len);
	return (__u16)len;
}

static const struct ppbpf_tlv ssl_subs[] = {
	{ PPBPF_SSL_VERSION, 7, (const __u8 *)"TLSv1.3" },
	{ PPBPF_SSL_CN, 16, (const __u8 *)"client.example.o" },
	{ PPBPF_SSL_CIPHER, 22, (const __u8 *)"TLS_AES_128_GCM_SHA256" },
	{ PPBPF_SSL_SIG_ALG, 23, (const __u8 *)"sha256WithRSAEncryption" },
	{ PPBPF_SSL_KEY_ALG, 7, (const __u8 *)"RSA2048" },
	{ PPBPF_SSL_GROUP, 6, (const __u8 *)"X25519" },
	{ PPBPF_SSL_SIG_SCHEME, 22, (const __u8 *)"rsa_pss_rsae_sha256xyz" },
	{ PPBPF_SSL_CLIENT_CERT, 4, (const __u8 *)"\x30\x82\x01\x00" },
};

/* An SSL TLV with every sub-TLV: head decoded (verify big endian), each sub found with its value. */
static void test_ssl_subs(void **state)
{
	__u8 val[512];
	__u16 vlen = build_ssl(PPBPF_SSL_CLIENT_SSL | PPBPF_SSL_CLIENT_CERT_CONN, 0x01020304u, ssl_subs,
			       ARRAY_SIZE(ssl_subs), val, sizeof(val));
	const struct ppbpf_tlv tlv = { PPBPF_TLV_SSL, vlen, val };
	struct ppbpf_tlv ssl, sub;
	struct ppbpf_hdr h;
	const __u8 *buf;
	__u8 client;
	__u32 verify;

	(void)state;
	assert_memory_equal(val, "\x03\x01\x02\x03\x04", PPBPF_SSL_HEAD_LEN); /* client, then verify big endian */
	buf = build_parse(&tlv, 1, &h);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_SSL, &ssl), 1);
	assert_int_equal(ppbpf_ssl_head(&ssl, &client, &verify), 0);
	assert_int_equal(client, 0x03);
	assert_int_equal(verify, 0x01020304u);
	for (size_t i = 0; i < ARRAY_SIZE(ssl_subs); i++) {
		assert_int_equal(ppbpf_ssl_find(&ssl, ssl_subs[i].type, &sub), 1);
		assert_int_equal(sub.type, ssl_subs[i].type);
		assert_int_equal(sub.len, ssl_subs[i].len);
		assert_memory_equal(sub.value, ssl_subs[i].value, sub.len);
		assert_true(sub.value > ssl.value && sub.value + sub.len <= ssl.value + ssl.len);
	}
	assert_int_equal(ppbpf_ssl_find(&ssl, 0x29, &sub), 0);
	assert_int_equal(ppbpf_ssl_find(&ssl, PPBPF_TLV_SSL, &sub), 0);
}

/* Sub-TLVs iterate in order; a duplicate sub-TLV is found first-wins. */
static void test_ssl_iter_order(void **state)
{
	const struct ppbpf_tlv subs[] = {
		{ PPBPF_SSL_CN, 3, (const __u8 *)"one" },
		{ 0x99, 0, NULL },
		{ PPBPF_SSL_CN, 3, (const __u8 *)"two" },
	};
	__u8 val[64];
	__u16 vlen = build_ssl(0, 0, subs, ARRAY_SIZE(subs), val, sizeof(val));
	const struct ppbpf_tlv tlv = { PPBPF_TLV_SSL, vlen, val };
	struct ppbpf_tlv ssl, sub;
	struct ppbpf_tlv_iter it;
	struct ppbpf_hdr h;
	const __u8 *buf;

	(void)state;
	assert_int_equal(vlen, PPBPF_SSL_HEAD_LEN + 3 * 3 + 6);
	buf = build_parse(&tlv, 1, &h);
	assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_SSL, &ssl), 1);
	assert_int_equal(ppbpf_ssl_iter_init(&it, &ssl), 0);
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		assert_int_equal(ppbpf_tlv_next(&it, &sub), 1);
		assert_int_equal(sub.type, subs[i].type);
		assert_int_equal(sub.len, subs[i].len);
		if (sub.len)
			assert_memory_equal(sub.value, subs[i].value, sub.len);
	}
	assert_int_equal(ppbpf_tlv_next(&it, &sub), 0);
	assert_int_equal(ppbpf_ssl_find(&ssl, PPBPF_SSL_CN, &sub), 1);
	assert_memory_equal(sub.value, "one", 3);
}

/* The verify field is read big endian over its whole range; client bits pass through. */
static void test_ssl_head_values(void **state)
{
	static const struct {
		__u8 client;
		__u32 verify;
		__u8 wire[5];
	} cases[] = {
		{ 0x00, 0x00000000u, { 0x00, 0x00, 0x00, 0x00, 0x00 } },
		{ 0x07, 0x00000001u, { 0x07, 0x00, 0x00, 0x00, 0x01 } },
		{ 0x01, 0x80000000u, { 0x01, 0x80, 0x00, 0x00, 0x00 } },
		{ 0xFF, 0xDEADBEEFu, { 0xFF, 0xDE, 0xAD, 0xBE, 0xEF } },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		__u8 val[8];
		__u16 vlen = build_ssl(cases[i].client, cases[i].verify, NULL, 0, val, sizeof(val));
		const struct ppbpf_tlv tlv = { PPBPF_TLV_SSL, vlen, val };
		struct ppbpf_tlv ssl, sub;
		struct ppbpf_hdr h;
		__u8 client;
		__u32 verify;
		const __u8 *buf;

		assert_int_equal(vlen, PPBPF_SSL_HEAD_LEN);
		assert_memory_equal(val, cases[i].wire, 5);
		buf = build_parse(&tlv, 1, &h);
		assert_int_equal(ppbpf_tlv_find(buf, &h, PPBPF_TLV_SSL, &ssl), 1);
		assert_int_equal(ppbpf_ssl_head(&ssl, &client, &verify), 0);
		assert_int_equal(client, cases[i].client);
		assert_int_equal(verify, cases[i].verify);
		assert_int_equal(ppbpf_ssl_find(&ssl, PPBPF_SSL_VERSION, &sub), 0);
	}
}

/* The SSL readers refuse a TLV that is not SSL, or an SSL value shorter than its 5-byte head. */
static void test_ssl_refuses_non_ssl(void **state)
{
	static const __u8 bytes[5] = { 1, 0, 0, 0, 0 };
	const __u8 *v = guard_put(bytes, sizeof(bytes));
	const struct ppbpf_tlv cases[] = {
		{ PPBPF_TLV_ALPN, 5, v },
		{ PPBPF_TLV_SSL, 4, v + 1 },
		{ PPBPF_TLV_SSL, 0, v + 5 },
		{ PPBPF_SSL_VERSION, 5, v },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct ppbpf_tlv_iter it;
		struct ppbpf_tlv sub;
		__u8 client;
		__u32 verify;

		assert_int_equal(ppbpf_ssl_iter_init(&it, &cases[i]), -EINVAL);
		assert_int_equal(ppbpf_ssl_find(&cases[i], PPBPF_SSL_VERSION, &sub), -EINVAL);
		assert_int_equal(ppbpf_ssl_head(&cases[i], &client, &verify), -EINVAL);
	}
}

/* A hand-made SSL value whose sub-TLVs break: iteration stops with -EBADMSG, find fails. */
static void test_ssl_malformed_subs(void **state)
{
	static const __u8 bytes[] = { 1, 0, 0, 0, 0, PPBPF_SSL_CN, 0x00, 0x09, 'a', 'b' };
	const __u8 *v = guard_put(bytes, sizeof(bytes));
	const struct ppbpf_tlv ssl = { PPBPF_TLV_SSL, sizeof(bytes), v };
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv sub;

	(void)state;
	assert_int_equal(ppbpf_ssl_iter_init(&it, &ssl), 0);
	assert_int_equal(ppbpf_tlv_next(&it, &sub), -EBADMSG);
	assert_true(ppbpf_ssl_find(&ssl, PPBPF_SSL_CN, &sub) < 0);
}

/* ---- names ------------------------------------------------------------------- */

/* Exactly the registered TLV types have names, the spec's PP2_TYPE_* without prefix. */
static void test_tlv_names(void **state)
{
	static const struct {
		__u8 type;
		const char *name;
	} names[] = {
		{ 0x01, "ALPN" }, { 0x02, "AUTHORITY" }, { 0x03, "CRC32C" }, { 0x04, "NOOP" },
		{ 0x05, "UNIQUE_ID" }, { 0x20, "SSL" }, { 0x30, "NETNS" }, { 0xE0, "GCP" },
		{ 0xEA, "AWS" }, { 0xEE, "AZURE" },
	};

	(void)state;
	for (int type = 0; type < 256; type++) {
		const char *want = NULL;

		for (size_t i = 0; i < ARRAY_SIZE(names); i++)
			if (names[i].type == type)
				want = names[i].name;
		if (want)
			assert_string_equal(ppbpf_tlv_name((__u8)type), want);
		else if (ppbpf_tlv_name((__u8)type))
			fail_msg("type 0x%02x has name '%s'", type, ppbpf_tlv_name((__u8)type));
	}
}

/* Exactly the SSL sub-types 0x21..0x28 have names, the spec's PP2_SUBTYPE_SSL_* without prefix. */
static void test_ssl_sub_names(void **state)
{
	static const char *const names[] = { "VERSION", "CN", "CIPHER", "SIG_ALG",
					     "KEY_ALG", "GROUP", "SIG_SCHEME", "CLIENT_CERT" };

	(void)state;
	for (int type = 0; type < 256; type++) {
		if (type >= 0x21 && type <= 0x28)
			assert_string_equal(ppbpf_ssl_sub_name((__u8)type), names[type - 0x21]);
		else if (ppbpf_ssl_sub_name((__u8)type))
			fail_msg("SSL sub-type 0x%02x has name '%s'", type, ppbpf_ssl_sub_name((__u8)type));
	}
}

/* ---- cloud TLVs ---------------------------------------------------------------- */

/* Build a header with one TLV (type, bytes) and return it as found in the parsed buffer. */
static struct ppbpf_tlv one_tlv(__u8 type, const void *value, __u16 len)
{
	const struct ppbpf_tlv in = { type, len, value };
	struct ppbpf_tlv t;
	struct ppbpf_hdr h;
	const __u8 *buf = build_parse(&in, 1, &h);

	assert_int_equal(ppbpf_tlv_find(buf, &h, type, &t), 1);
	assert_int_equal(t.len, len);
	return t;
}

/* AWS subtype 0x01: the VPC endpoint id as a string, with the exact -ENOSPC boundary. */
static void test_aws_vpce_id(void **state)
{
	static const char id[] = "vpce-08d2bf15fac5001c9";
	__u8 val[64];
	char out[64];
	struct ppbpf_tlv t;
	size_t n = strlen(id);

	(void)state;
	val[0] = PPBPF_AWS_VPCE_ID;
	memcpy(val + 1, id, n);
	t = one_tlv(PPBPF_TLV_AWS, val, (__u16)(n + 1));
	memset(out, '#', sizeof(out));
	assert_int_equal(ppbpf_aws_vpce_id(&t, out, n + 1), (int)n);
	assert_string_equal(out, id);
	assert_int_equal(out[n + 1], '#');
	assert_int_equal(ppbpf_aws_vpce_id(&t, out, n), -ENOSPC);
	assert_int_equal(ppbpf_aws_vpce_id(&t, out, 0), -ENOSPC);

	t = one_tlv(PPBPF_TLV_AWS, val, 1); /* subtype alone: an empty id */
	assert_int_equal(ppbpf_aws_vpce_id(&t, out, 1), 0);
	assert_string_equal(out, "");
}

/* Not an AWS VPC endpoint id: other subtype, empty value, other type. */
static void test_aws_not_vpce(void **state)
{
	static const __u8 other[] = { 0x02, 'v', 'p', 'c', 'e' };
	static const __u8 good[] = { PPBPF_AWS_VPCE_ID, 'v', 'p', 'c', 'e' };
	char out[64];
	struct ppbpf_tlv t;

	(void)state;
	t = one_tlv(PPBPF_TLV_AWS, other, sizeof(other));
	assert_int_equal(ppbpf_aws_vpce_id(&t, out, sizeof(out)), -ENOENT);
	t = one_tlv(PPBPF_TLV_AWS, NULL, 0);
	assert_int_equal(ppbpf_aws_vpce_id(&t, out, sizeof(out)), -ENOENT);
	t = one_tlv(PPBPF_TLV_AZURE, good, sizeof(good));
	assert_int_equal(ppbpf_aws_vpce_id(&t, out, sizeof(out)), -ENOENT);
}

/* Azure subtype 0x01 + 4 bytes little endian: 01 c1 45 00 21 is 0x210045c1. */
static void test_azure_link_id(void **state)
{
	static const __u8 val[] = { 0x01, 0xc1, 0x45, 0x00, 0x21 };
	static const __u8 top[] = { 0x01, 0x00, 0x00, 0x00, 0x80 };
	struct ppbpf_tlv t;
	__u32 id = 0;

	(void)state;
	t = one_tlv(PPBPF_TLV_AZURE, val, sizeof(val));
	assert_int_equal(ppbpf_azure_link_id(&t, &id), 0);
	assert_int_equal(id, 0x210045c1u);
	t = one_tlv(PPBPF_TLV_AZURE, top, sizeof(top));
	assert_int_equal(ppbpf_azure_link_id(&t, &id), 0);
	assert_int_equal(id, 0x80000000u);
}

/* Not an Azure link id: wrong length (4, 6, 0), other subtype, other type. */
static void test_azure_not_link_id(void **state)
{
	static const __u8 val[] = { 0x01, 0xc1, 0x45, 0x00, 0x21, 0x00 };
	static const __u8 other[] = { 0x02, 0xc1, 0x45, 0x00, 0x21 };
	struct ppbpf_tlv t;
	__u32 id = 0x5A5A5A5A;

	(void)state;
	t = one_tlv(PPBPF_TLV_AZURE, val, 4);
	assert_int_equal(ppbpf_azure_link_id(&t, &id), -ENOENT);
	t = one_tlv(PPBPF_TLV_AZURE, val, 6);
	assert_int_equal(ppbpf_azure_link_id(&t, &id), -ENOENT);
	t = one_tlv(PPBPF_TLV_AZURE, NULL, 0);
	assert_int_equal(ppbpf_azure_link_id(&t, &id), -ENOENT);
	t = one_tlv(PPBPF_TLV_AZURE, other, sizeof(other));
	assert_int_equal(ppbpf_azure_link_id(&t, &id), -ENOENT);
	t = one_tlv(PPBPF_TLV_AWS, val, 5);
	assert_int_equal(ppbpf_azure_link_id(&t, &id), -ENOENT);
	assert_int_equal(id, 0x5A5A5A5A);
}

/* GCP: 8 bytes big endian; ff ff ff ff c0 a8 64 02 is 18446744072646845442. */
static void test_gcp_psc_id(void **state)
{
	static const __u8 val[] = { 0xff, 0xff, 0xff, 0xff, 0xc0, 0xa8, 0x64, 0x02 };
	static const __u8 small[] = { 0, 0, 0, 0, 0, 0, 0x01, 0x02 };
	struct ppbpf_tlv t;
	__u64 id = 0;

	(void)state;
	t = one_tlv(PPBPF_TLV_GCP, val, sizeof(val));
	assert_int_equal(ppbpf_gcp_psc_id(&t, &id), 0);
	assert_true(id == 18446744072646845442ull);
	t = one_tlv(PPBPF_TLV_GCP, small, sizeof(small));
	assert_int_equal(ppbpf_gcp_psc_id(&t, &id), 0);
	assert_true(id == 0x0102);
}

/* Not a GCP id: wrong length (7, 9, 0) or other type. */
static void test_gcp_not_psc_id(void **state)
{
	static const __u8 val[9] = { 0xff, 0xff, 0xff, 0xff, 0xc0, 0xa8, 0x64, 0x02, 0x00 };
	struct ppbpf_tlv t;
	__u64 id = 77;

	(void)state;
	t = one_tlv(PPBPF_TLV_GCP, val, 7);
	assert_int_equal(ppbpf_gcp_psc_id(&t, &id), -ENOENT);
	t = one_tlv(PPBPF_TLV_GCP, val, 9);
	assert_int_equal(ppbpf_gcp_psc_id(&t, &id), -ENOENT);
	t = one_tlv(PPBPF_TLV_GCP, NULL, 0);
	assert_int_equal(ppbpf_gcp_psc_id(&t, &id), -ENOENT);
	t = one_tlv(0xE1, val, 8);
	assert_int_equal(ppbpf_gcp_psc_id(&t, &id), -ENOENT);
	assert_true(id == 77);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_unknown_kept),
		cmocka_unit_test(test_find_first_and_absent),
		cmocka_unit_test(test_no_tlvs),
		cmocka_unit_test(test_local_unspec_tlvs),
		cmocka_unit_test(test_malformed_lists),
		cmocka_unit_test(test_exact_fit),
		cmocka_unit_test(test_ssl_subs),
		cmocka_unit_test(test_ssl_iter_order),
		cmocka_unit_test(test_ssl_head_values),
		cmocka_unit_test(test_ssl_refuses_non_ssl),
		cmocka_unit_test(test_ssl_malformed_subs),
		cmocka_unit_test(test_tlv_names),
		cmocka_unit_test(test_ssl_sub_names),
		cmocka_unit_test(test_aws_vpce_id),
		cmocka_unit_test(test_aws_not_vpce),
		cmocka_unit_test(test_azure_link_id),
		cmocka_unit_test(test_azure_not_link_id),
		cmocka_unit_test(test_gcp_psc_id),
		cmocka_unit_test(test_gcp_not_psc_id),
	};

	return RUN_UNIT_CASES(argc, argv, tests);
}
