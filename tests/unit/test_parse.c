// SPDX-License-Identifier: MIT
/*
 * The shared parser against the vector table: every rule, every status code,
 * every prefix of every valid header, inputs ending at a guard page.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>
#include "cases.h"
#include "guard.h"
#include "vectors.h"

static __u8 input[VECTOR_MAX + 512];

/* Parse the first n bytes of input, placed at the guard page. */
static int parse_at_guard(size_t n, __u32 max, struct ppbpf_hdr *h)
{
	return ppbpf_parse_max(guard_put(input, n), (__u32)n, max, h);
}

/* Compare one field; on a mismatch say which vector and field, and count it. */
#define FIELD(v, what, got, want)                                                                   \
	do {                                                                                        \
		if ((long long)(got) != (long long)(want)) {                                        \
			print_error("vector '%s': %s is %lld, want %lld\n", (v)->name, what,         \
				    (long long)(got), (long long)(want));                           \
			bad++;                                                                      \
		}                                                                                   \
	} while (0)

/* The fields of a parsed header against the vector; returns the number of mismatches. */
static int check_fields(const struct vector *v, const __u8 *buf, const struct ppbpf_hdr *h)
{
	static const __u8 zero[16];
	int af = ppbpf_family_af(h->family), bad = 0;
	char src[PPBPF_ADDRSTRLEN] = "", dst[PPBPF_ADDRSTRLEN] = "";

	FIELD(v, "header_len", h->header_len, v->rc);
	FIELD(v, "version", h->version, buf[0] == 'P' ? 1 : 2);
	FIELD(v, "command", h->command, v->command);
	FIELD(v, "family", h->family, v->family);
	FIELD(v, "tlv_len", h->tlv_len, v->tlv_len);
	if (v->src) {
		FIELD(v, "family has addresses", af == AF_INET || af == AF_INET6, 1);
		ppbpf_format_ip(af, h->src_addr, src, sizeof(src));
		ppbpf_format_ip(af, h->dst_addr, dst, sizeof(dst));
		FIELD(v, "src_addr matches", strcmp(src, v->src) == 0, 1);
		FIELD(v, "dst_addr matches", strcmp(dst, v->dst) == 0, 1);
		FIELD(v, "src_port", h->src_port, v->sport);
		FIELD(v, "dst_port", h->dst_port, v->dport);
	} else {
		FIELD(v, "family has addresses", af == AF_INET || af == AF_INET6, 0);
		FIELD(v, "src_addr is zero", memcmp(h->src_addr, zero, 16) == 0, 1);
		FIELD(v, "src_port", h->src_port, 0);
	}
	if (h->version == 2) {
		FIELD(v, "addr_off", h->addr_off, PPBPF_V2_FIXED_LEN);
		FIELD(v, "tlv_off + tlv_len", h->tlv_off + h->tlv_len, h->header_len);
	}
	if (bad)
		print_error("vector '%s': addresses '%s' '%s'\n", v->name, src, dst);
	return bad;
}

static void test_vectors(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < n_vectors; i++) {
		const struct vector *v = &vectors[i];
		size_t n = vector_bytes(v, input, sizeof(input));
		struct ppbpf_hdr h;
		int rc = parse_at_guard(n, vector_max(v), &h);

		/* report every wrong status before failing, then check fields */
		if (rc != v->rc) {
			print_error("vector '%s': got %d (%s), want %d (%s)\n", v->name, rc, ppbpf_errname(rc),
				    v->rc, ppbpf_errname(v->rc));
			bad++;
		} else if (rc == PPBPF_E_INCOMPLETE && h.need != v->need) {
			print_error("vector '%s': need %u, want %u\n", v->name, h.need, v->need);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
	for (size_t i = 0; i < n_vectors; i++) {
		const struct vector *v = &vectors[i];
		size_t n = vector_bytes(v, input, sizeof(input));
		struct ppbpf_hdr h;

		if (parse_at_guard(n, vector_max(v), &h) > 0)
			bad += check_fields(v, input, &h);
	}
	assert_int_equal(bad, 0);
}

/* Every proper prefix of a valid header is a valid prefix: incomplete, with an honest need. */
static void test_prefixes_are_incomplete(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_vectors; i++) {
		const struct vector *v = &vectors[i];
		struct ppbpf_hdr h;

		if (v->rc <= 0)
			continue;
		vector_bytes(v, input, sizeof(input));
		for (size_t k = 0; k < (size_t)v->rc; k++) {
			int rc = parse_at_guard(k, vector_max(v), &h);

			if (rc != PPBPF_E_INCOMPLETE)
				fail_msg("vector '%s' prefix %zu: got %s", v->name, k, ppbpf_errname(rc));
			if (h.need < 1 || k + h.need > (size_t)v->rc)
				fail_msg("vector '%s' prefix %zu: need %u, header is %d", v->name, k, h.need, v->rc);
		}
	}
}

/* Once a prefix is wrong, more bytes never change the verdict. */
static void test_errors_are_final(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_vectors; i++) {
		const struct vector *v = &vectors[i];
		size_t n = vector_bytes(v, input, sizeof(input));
		struct ppbpf_hdr h;
		int full = parse_at_guard(n, vector_max(v), &h);

		for (size_t k = 0; k < n; k++) {
			int rc = parse_at_guard(k, vector_max(v), &h);

			if (rc != PPBPF_E_INCOMPLETE && rc != full)
				fail_msg("vector '%s' prefix %zu: %s but the whole input gives %s", v->name, k,
					 ppbpf_errname(rc), ppbpf_errname(full));
		}
	}
}

/* Bytes after the header never change the result. */
static void test_trailing_bytes_ignored(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_vectors; i++) {
		const struct vector *v = &vectors[i];
		struct ppbpf_hdr a, b;

		if (v->rc <= 0)
			continue;
		vector_bytes(v, input, sizeof(input));
		assert_int_equal(parse_at_guard((size_t)v->rc, vector_max(v), &a), v->rc);
		for (int extra = 1; extra <= 300; extra += 37) {
			for (int j = 0; j < extra; j++)
				input[v->rc + j] = (__u8)(j * 31 + 7);
			assert_int_equal(parse_at_guard((size_t)v->rc + extra, vector_max(v), &b), v->rc);
			assert_memory_equal(&a, &b, sizeof(a));
		}
	}
}

/* The size limit: exactly max is fine, one byte less refuses. */
static void test_max_limit(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_vectors; i++) {
		const struct vector *v = &vectors[i];
		struct ppbpf_hdr h;
		size_t n;

		if (v->rc <= 0)
			continue;
		n = vector_bytes(v, input, sizeof(input));
		assert_int_equal(parse_at_guard(n, (__u32)v->rc, &h), v->rc);
		assert_int_equal(parse_at_guard(n, (__u32)v->rc - 1, &h), PPBPF_E_TOO_LARGE);
	}
}

/* Every status code is exercised by at least one vector. */
static void test_every_status_covered(void **state)
{
	(void)state;
	for (int s = PPBPF_E_INCOMPLETE; s >= PPBPF_E_LAST; s--) {
		size_t i;

		for (i = 0; i < n_vectors && vectors[i].rc != s; i++)
			;
		if (i == n_vectors)
			fail_msg("no vector expects %s", ppbpf_errname(s));
	}
}

/* Zero bytes: incomplete, and nothing is read. */
static void test_empty_input(void **state)
{
	struct ppbpf_hdr h;

	(void)state;
	assert_int_equal(ppbpf_parse(guard_put("", 0), 0, &h), PPBPF_E_INCOMPLETE);
	assert_int_equal(h.need, PPBPF_MIN_LEN);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_prefixes_are_incomplete),
		cmocka_unit_test(test_errors_are_final),
		cmocka_unit_test(test_trailing_bytes_ignored),
		cmocka_unit_test(test_max_limit),
		cmocka_unit_test(test_every_status_covered),
		cmocka_unit_test(test_empty_input),
	};

	return RUN_UNIT_CASES(argc, argv, tests);
}
