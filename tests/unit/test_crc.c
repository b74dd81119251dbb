// SPDX-License-Identifier: MIT
/*
 * CRC32C: published check values, the table-driven and the SSE4.2 versions
 * against an independent bit-at-a-time reference, inputs at a guard page.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <ppbpf/ppbpf.h>
#include "cases.h"
#include "guard.h"
#include "ref_crc32c.h"
#include "prng.h"

/* A known input: n bytes made by fill(i). */
struct known {
	const char *name;
	size_t n;
	unsigned char (*fill)(size_t i);
	uint32_t crc;
};

static unsigned char zeros(size_t i) { (void)i; return 0x00; }
static unsigned char ones(size_t i) { (void)i; return 0xFF; }
static unsigned char incr(size_t i) { return (unsigned char)i; }
static unsigned char decr(size_t i) { return (unsigned char)(31 - i); }
static unsigned char digits(size_t i) { return (unsigned char)('1' + i); }

/* RFC 3720 appendix B.4, and the CRC catalogue's check value for "123456789". */
static const struct known known[] = {
	{ "123456789", 9, digits, 0xE3069283u },
	{ "32 x 00", 32, zeros, 0x8A9136AAu },
	{ "32 x FF", 32, ones, 0x62A8AB43u },
	{ "00..1F", 32, incr, 0x46DD794Eu },
	{ "1F..00", 32, decr, 0x113FDB5Cu },
	{ "empty", 0, zeros, 0x00000000u },
};

/* The reference itself gives the published values (so it can judge the rest). */
static void test_reference_matches_published(void **state)
{
	unsigned char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		for (size_t k = 0; k < known[i].n; k++)
			buf[k] = known[i].fill(k);
		if (ref_crc32c(buf, known[i].n) != known[i].crc)
			fail_msg("reference: %s", known[i].name);
	}
}

/* Every entry of the literal table is the CRC of its byte, from the definition. */
static void test_table_entries(void **state)
{
	(void)state;
	for (unsigned int b = 0; b < 256; b++) {
		uint32_t c = b;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (PPBPF_CRC32C_POLY & (0u - (c & 1u)));
		if (ppbpf_crc32c_table[b] != c)
			fail_msg("table[%u] = 0x%08x, want 0x%08x", b, ppbpf_crc32c_table[b], c);
	}
}

/* ppbpf_crc32c, _sw and _hw give the published values, reading only the input. */
static void test_published_values(void **state)
{
	unsigned char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		const struct known *k = &known[i];
		const __u8 *in;

		for (size_t j = 0; j < k->n; j++)
			buf[j] = k->fill(j);
		in = guard_put(buf, k->n);
		if (ppbpf_crc32c(in, (__u32)k->n) != k->crc)
			fail_msg("ppbpf_crc32c(%s) = %08x, want %08x", k->name, ppbpf_crc32c(in, (__u32)k->n),
				 k->crc);
		assert_int_equal(~ppbpf_crc32c_sw(~0u, in, (__u32)k->n), k->crc);
		if (ppbpf_crc32c_have_hw())
			assert_int_equal(~ppbpf_crc32c_hw(~0u, in, (__u32)k->n), k->crc);
	}
}

/* The iSCSI read command PDU of RFC 3720 B.4. */
static void test_iscsi_pdu(void **state)
{
	static const unsigned char pdu[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};

	(void)state;
	assert_int_equal(ref_crc32c(pdu, sizeof(pdu)), 0xD9963A56u);
	assert_int_equal(ppbpf_crc32c(guard_put(pdu, sizeof(pdu)), sizeof(pdu)), 0xD9963A56u);
}

/* sw, hw and the reference agree for every length 0..300 at every offset 0..15. */
static void test_sw_hw_agree(void **state)
{
	struct prng r = { 0xC0FFEE };
	unsigned char buf[300 + 16];

	(void)state;
	for (size_t n = 0; n <= 300; n++) {
		for (size_t off = 0; off < 16; off++) {
			const __u8 *in;
			uint32_t want;

			prng_fill(&r, buf, n + off);
			want = ref_crc32c(buf + off, n);
			in = guard_put(buf, n + off) + off; /* misaligned start, end at the guard */
			if (~ppbpf_crc32c_sw(~0u, in, (__u32)n) != want)
				fail_msg("sw: length %zu offset %zu", n, off);
			if (ppbpf_crc32c_have_hw() && ~ppbpf_crc32c_hw(~0u, in, (__u32)n) != want)
				fail_msg("hw: length %zu offset %zu", n, off);
			if (ppbpf_crc32c(in, (__u32)n) != want)
				fail_msg("ppbpf_crc32c: length %zu offset %zu", n, off);
		}
	}
}

/* The running CRC composes: any split of the input gives the same result. */
static void test_running_crc_composes(void **state)
{
	struct prng r = { 42 };
	unsigned char buf[257];

	(void)state;
	prng_fill(&r, buf, sizeof(buf));
	for (__u32 cut = 0; cut <= sizeof(buf); cut++) {
		__u32 sw = ppbpf_crc32c_sw(ppbpf_crc32c_sw(~0u, buf, cut), buf + cut, sizeof(buf) - cut);
		__u32 up = ppbpf_crc32c_update(ppbpf_crc32c_update(~0u, buf, cut), buf + cut, sizeof(buf) - cut);

		assert_int_equal(~sw, ref_crc32c(buf, sizeof(buf)));
		assert_int_equal(~up, ref_crc32c(buf, sizeof(buf)));
		if (ppbpf_crc32c_have_hw()) {
			__u32 hw = ppbpf_crc32c_hw(ppbpf_crc32c_hw(~0u, buf, cut), buf + cut, sizeof(buf) - cut);

			assert_int_equal(~hw, ref_crc32c(buf, sizeof(buf)));
		}
	}
}

/* ppbpf_crc32c(p, n) is ~ppbpf_crc32c_update(~0, p, n); the byte step matches sw. */
static void test_wrappers(void **state)
{
	struct prng r = { 7 };
	unsigned char buf[100];

	(void)state;
	for (int t = 0; t < 100; t++) {
		__u32 n = prng_below(&r, sizeof(buf) + 1), crc = ~0u;

		prng_fill(&r, buf, n);
		assert_int_equal(ppbpf_crc32c(buf, n), ~ppbpf_crc32c_update(~0u, buf, n));
		for (__u32 i = 0; i < n; i++)
			crc = ppbpf_crc32c_byte(crc, buf[i]);
		assert_int_equal(crc, ppbpf_crc32c_sw(~0u, buf, n));
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_matches_published),
		cmocka_unit_test(test_table_entries),
		cmocka_unit_test(test_published_values),
		cmocka_unit_test(test_iscsi_pdu),
		cmocka_unit_test(test_sw_hw_agree),
		cmocka_unit_test(test_running_crc_composes),
		cmocka_unit_test(test_wrappers),
	};

	if (!ppbpf_crc32c_have_hw())
		print_message("no SSE4.2 on this CPU: ppbpf_crc32c_hw is not compared\n");
	return RUN_UNIT_CASES(argc, argv, tests);
}
