// SPDX-License-Identifier: MIT
/*
 * Families and addresses: RFC 5952 text, strict parsing, and agreement with
 * glibc's inet_ntop/inet_pton over many random addresses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <ppbpf/ppbpf.h>
#include "cases.h"
#include "guard.h"
#include "prng.h"

#define N_RANDOM 100000

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* 8 groups to 16 bytes, network order. */
static void from_groups(const uint16_t g[8], __u8 out[16])
{
	for (int i = 0; i < 8; i++) {
		out[2 * i] = (__u8)(g[i] >> 8);
		out[2 * i + 1] = (__u8)g[i];
	}
}

/* ---- ppbpf_family_name / ppbpf_family_af ------------------------------------ */

/* Each family has its documented name and socket family; out of range gives NULL/AF_UNSPEC. */
static void test_family_table(void **state)
{
	static const struct {
		int fam;
		const char *name;
		int af;
	} cases[] = {
		{ PPBPF_FAM_UNSPEC, "UNSPEC", AF_UNSPEC },  { PPBPF_FAM_TCP4, "TCP4", AF_INET },
		{ PPBPF_FAM_TCP6, "TCP6", AF_INET6 },       { PPBPF_FAM_UDP4, "UDP4", AF_INET },
		{ PPBPF_FAM_UDP6, "UDP6", AF_INET6 },       { PPBPF_FAM_UNIX_STREAM, "UNIX", AF_UNIX },
		{ PPBPF_FAM_UNIX_DGRAM, "UNIX", AF_UNIX },  { PPBPF_FAM_UNKNOWN, "UNKNOWN", AF_UNSPEC },
		{ -1, NULL, AF_UNSPEC },                    { 8, NULL, AF_UNSPEC },
		{ 255, NULL, AF_UNSPEC },                   { -1000000, NULL, AF_UNSPEC },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *name = ppbpf_family_name(cases[i].fam);

		if (cases[i].name)
			assert_string_equal(name, cases[i].name);
		else
			assert_null(name);
		assert_int_equal(ppbpf_family_af(cases[i].fam), cases[i].af);
	}
}

/* ---- ppbpf_format_ip -------------------------------------------------------- */

struct fmt6_case {
	uint16_t g[8];
	const char *text;
};

/* RFC 5952 section 4 rules, each written out by hand. */
static const struct fmt6_case fmt6_cases[] = {
	{ { 0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 }, "2001:db8::1" },
	{ { 0, 0, 0, 0, 0, 0, 0, 0 }, "::" },
	{ { 0, 0, 0, 0, 0, 0, 0, 1 }, "::1" },
	{ { 1, 0, 0, 0, 0, 0, 0, 0 }, "1::" },
	{ { 1, 0, 0, 0, 0, 0, 0, 1 }, "1::1" },
	/* 4.2.3: on a tie the first run is compressed */
	{ { 0x2001, 0xdb8, 0, 0, 1, 0, 0, 1 }, "2001:db8::1:0:0:1" },
	{ { 0, 0, 1, 0, 0, 1, 0, 0 }, "::1:0:0:1:0:0" },
	/* 4.2.3: the longest run wins even when later */
	{ { 0x2001, 0, 0, 1, 0, 0, 0, 1 }, "2001:0:0:1::1" },
	{ { 0, 0, 1, 0, 0, 0, 0, 0 }, "0:0:1::" },
	{ { 0x2001, 0xdb8, 0, 0, 0, 1, 0, 0 }, "2001:db8::1:0:0" },
	/* 4.2.2: a single zero group is not compressed */
	{ { 0x2001, 0xdb8, 0, 1, 1, 1, 1, 1 }, "2001:db8:0:1:1:1:1:1" },
	{ { 0, 1, 0, 1, 0, 1, 0, 1 }, "0:1:0:1:0:1:0:1" },
	{ { 1, 2, 3, 4, 5, 6, 7, 0 }, "1:2:3:4:5:6:7:0" },
	{ { 0, 2, 3, 4, 5, 6, 7, 8 }, "0:2:3:4:5:6:7:8" },
	/* 4.1 no leading zeros, 4.3 lower case */
	{ { 0x0001, 0x0010, 0x0100, 0x1000, 0x000a, 0x00bc, 0x0def, 0xABCD }, "1:10:100:1000:a:bc:def:abcd" },
	{ { 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff },
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
	/* section 5: v4-mapped in mixed notation */
	{ { 0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201 }, "::ffff:192.0.2.1" },
	{ { 0, 0, 0, 0, 0, 0xffff, 0, 0 }, "::ffff:0.0.0.0" },
	{ { 0, 0, 0, 0, 0, 0xffff, 0xffff, 0xffff }, "::ffff:255.255.255.255" },
	/* near misses of the v4-mapped prefix stay hex */
	{ { 0, 0, 0, 0, 0, 0xfffe, 0xc000, 0x0201 }, "::fffe:c000:201" },
	{ { 0, 0, 0, 0, 1, 0xffff, 0xc000, 0x0201 }, "::1:ffff:c000:201" },
	{ { 0, 0, 0, 0, 0, 0xffff, 0, 1 }, "::ffff:0.0.0.1" },
	/* the deprecated IPv4-compatible form is not special: plain hex */
	{ { 0, 0, 0, 0, 0, 0, 0x0102, 0x0304 }, "::102:304" },
	{ { 0, 0, 0, 0, 0, 0, 2, 3 }, "::2:3" },
};

struct fmt4_case {
	__u8 a[4];
	const char *text;
};

static const struct fmt4_case fmt4_cases[] = {
	{ { 0, 0, 0, 0 }, "0.0.0.0" },           { { 255, 255, 255, 255 }, "255.255.255.255" },
	{ { 192, 0, 2, 1 }, "192.0.2.1" },       { { 10, 0, 0, 100 }, "10.0.0.100" },
	{ { 1, 20, 100, 200 }, "1.20.100.200" }, { { 198, 51, 100, 2 }, "198.51.100.2" },
};

/*
 * Format addr and check the text, with the output capacity at the exact
 * boundary: len + 1 fits, len does not, and nothing is written past cap.
 */
static void check_format(int af, const __u8 *addr, size_t alen, const char *want)
{
	size_t n = strlen(want);
	char out[64];
	const __u8 *in;
	int rc;

	for (size_t cap = 0; cap <= n + 1; cap++) {
		memset(out, '#', sizeof(out));
		in = guard_put(addr, alen); /* IPv4 reads 4 bytes, not 16 */
		rc = ppbpf_format_ip(af, in, out, cap);
		if (cap <= n) {
			if (rc != -ENOSPC)
				fail_msg("'%s' with cap %zu: got %d, want -ENOSPC", want, cap, rc);
		} else {
			if (rc != (int)n || strcmp(out, want))
				fail_msg("got %d '%.*s', want %zu '%s'", rc, (int)n, out, n, want);
		}
		for (size_t k = cap; k < sizeof(out); k++)
			if (out[k] != '#')
				fail_msg("'%s' with cap %zu: byte %zu written", want, cap, k);
	}
}

/* Every RFC 5952 case formats as written, with the exact -ENOSPC boundary. */
static void test_format_ipv6_rfc5952(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(fmt6_cases); i++) {
		__u8 a[16];

		from_groups(fmt6_cases[i].g, a);
		check_format(AF_INET6, a, 16, fmt6_cases[i].text);
	}
}

/* Dotted quads, decimal without leading zeros, with the exact -ENOSPC boundary. */
static void test_format_ipv4(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(fmt4_cases); i++)
		check_format(AF_INET, fmt4_cases[i].a, 4, fmt4_cases[i].text);
}

/* Families other than AF_INET/AF_INET6 are refused, even with room to spare. */
static void test_format_bad_family(void **state)
{
	static const __u8 a[16] = { 1, 2, 3, 4 };
	char out[PPBPF_ADDRSTRLEN];

	(void)state;
	assert_int_equal(ppbpf_format_ip(AF_UNIX, a, out, sizeof(out)), -EAFNOSUPPORT);
	assert_int_equal(ppbpf_format_ip(AF_UNSPEC, a, out, sizeof(out)), -EAFNOSUPPORT);
	assert_int_equal(ppbpf_format_ip(AF_INET6 + 1000, a, out, sizeof(out)), -EAFNOSUPPORT);
}

/* A random IPv6 address, often with runs of zero groups, small groups, or the v4-mapped prefix. */
static void random_ipv6(struct prng *r, __u8 a[16])
{
	uint16_t g[8];

	for (int i = 0; i < 8; i++) {
		static const uint16_t masks[] = { 0xffff, 0x0fff, 0x00ff, 0x000f, 0x0001 };

		g[i] = (uint16_t)(prng_next(r) & masks[prng_below(r, ARRAY_SIZE(masks))]);
	}
	switch (prng_below(r, 5)) {
	case 0: /* groups independently zero half the time */
		for (int i = 0; i < 8; i++)
			if (prng_below(r, 2))
				g[i] = 0;
		break;
	case 1: /* one random run of zeros */
	case 2: { /* two random runs, to exercise ties and longest-run choice */
		int runs = 1 + (int)prng_below(r, 2);

		for (int k = 0; k < runs; k++) {
			int start = (int)prng_below(r, 8), len = 1 + (int)prng_below(r, 8 - (uint32_t)start);

			for (int i = start; i < start + len; i++)
				g[i] = 0;
		}
		break;
	}
	case 3: /* v4-mapped */
		memset(g, 0, 5 * sizeof(g[0]));
		g[5] = 0xffff;
		break;
	default: /* as drawn */
		break;
	}
	from_groups(g, a);
}

/* glibc writes ::a.b.c.d when the first 6 groups are 0 and the seventh is not. */
static int glibc_compat_form(const __u8 a[16])
{
	static const __u8 zero[12];

	return !memcmp(a, zero, 12) && (a[12] || a[13]);
}

/* Random IPv6 addresses format exactly as glibc's inet_ntop, and parse back to the same bytes. */
static void test_format_ipv6_vs_glibc(void **state)
{
	struct prng r = { 0x5952 };
	int compared = 0;

	(void)state;
	for (int t = 0; t < N_RANDOM; t++) {
		char ours[PPBPF_ADDRSTRLEN], libc[INET6_ADDRSTRLEN];
		__u8 a[16], back[16], pton[16];
		int rc;

		random_ipv6(&r, a);
		rc = ppbpf_format_ip(AF_INET6, guard_put(a, 16), ours, sizeof(ours));
		if (rc <= 0)
			fail_msg("format returned %d", rc);
		assert_int_equal(rc, strlen(ours));
		/* glibc prints the deprecated IPv4-compatible form as ::a.b.c.d; RFC 5952 text is hex there */
		if (!glibc_compat_form(a)) {
			assert_non_null(inet_ntop(AF_INET6, a, libc, sizeof(libc)));
			if (strcmp(ours, libc))
				fail_msg("ours '%s', glibc '%s'", ours, libc);
			compared++;
		}
		if (ppbpf_parse_ip(AF_INET6, (const char *)guard_put(ours, strlen(ours) + 1), back))
			fail_msg("'%s' does not parse back", ours);
		assert_memory_equal(back, a, 16);
		assert_int_equal(inet_pton(AF_INET6, ours, pton), 1);
		assert_memory_equal(pton, a, 16);
	}
	assert_true(compared > N_RANDOM / 2);
}

/* Random IPv4 addresses format exactly as glibc's inet_ntop, and parse back. */
static void test_format_ipv4_vs_glibc(void **state)
{
	struct prng r = { 0x0404 };

	(void)state;
	for (int t = 0; t < N_RANDOM; t++) {
		char ours[PPBPF_ADDRSTRLEN], libc[INET_ADDRSTRLEN];
		__u8 a[4], back[4];
		int rc;

		prng_fill(&r, a, 4);
		for (int i = 0; i < 4; i++)
			if (prng_below(&r, 4) == 0)
				a[i] = (__u8)prng_below(&r, 10); /* one-digit octets, often 0 */
		rc = ppbpf_format_ip(AF_INET, guard_put(a, 4), ours, sizeof(ours));
		if (rc <= 0)
			fail_msg("format returned %d", rc);
		assert_int_equal(rc, strlen(ours));
		assert_non_null(inet_ntop(AF_INET, a, libc, sizeof(libc)));
		if (strcmp(ours, libc))
			fail_msg("ours '%s', glibc '%s'", ours, libc);
		assert_int_equal(ppbpf_parse_ip(AF_INET, (const char *)guard_put(ours, strlen(ours) + 1), back), 0);
		assert_memory_equal(back, a, 4);
	}
}

/* ---- ppbpf_parse_ip ----------------------------------------------------------- */

/* Parse text placed at the guard page (NUL last), into out. */
static int parse_guarded(int af, const char *text, __u8 *out)
{
	return ppbpf_parse_ip(af, (const char *)guard_put(text, strlen(text) + 1), out);
}

struct parse6_ok {
	const char *text;
	uint16_t g[8];
};

/* Valid RFC 4291 texts, and the groups they mean. */
static const struct parse6_ok parse6_ok[] = {
	{ "::", { 0 } },
	{ "::1", { 0, 0, 0, 0, 0, 0, 0, 1 } },
	{ "1::", { 1, 0, 0, 0, 0, 0, 0, 0 } },
	{ "2001:DB8::1", { 0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 } },
	{ "ABCD:EF01:2345:6789:abcd:ef01:2345:6789",
	  { 0xabcd, 0xef01, 0x2345, 0x6789, 0xabcd, 0xef01, 0x2345, 0x6789 } },
	{ "aBcD:0:0:0:0:0:0:Ff", { 0xabcd, 0, 0, 0, 0, 0, 0, 0xff } },
	{ "0000:0000:0000:0000:0000:0000:0000:0001", { 0, 0, 0, 0, 0, 0, 0, 1 } },
	{ "2001:0db8:0000:0000:0000:0000:0000:0001", { 0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 } },
	{ "1:2:3:4:5:6:7::", { 1, 2, 3, 4, 5, 6, 7, 0 } },
	{ "::2:3:4:5:6:7:8", { 0, 2, 3, 4, 5, 6, 7, 8 } },
	{ "1:2:3::5:6:7:8", { 1, 2, 3, 0, 5, 6, 7, 8 } },
	{ "::ffff:1.2.3.4", { 0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304 } },
	{ "::FFFF:192.0.2.1", { 0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201 } },
	{ "::1.2.3.4", { 0, 0, 0, 0, 0, 0, 0x0102, 0x0304 } },
	{ "1:2:3:4:5:6:255.255.255.255", { 1, 2, 3, 4, 5, 6, 0xffff, 0xffff } },
	{ "1::6:0.0.0.0", { 1, 0, 0, 0, 0, 6, 0, 0 } },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
	  { 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff } },
};

/* Valid IPv6 texts give the right bytes and agree with inet_pton. */
static void test_parse_ipv6_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(parse6_ok); i++) {
		__u8 want[16], got[16], pton[16];

		from_groups(parse6_ok[i].g, want);
		if (parse_guarded(AF_INET6, parse6_ok[i].text, got))
			fail_msg("'%s' refused", parse6_ok[i].text);
		assert_memory_equal(got, want, 16);
		assert_int_equal(inet_pton(AF_INET6, parse6_ok[i].text, pton), 1);
		assert_memory_equal(pton, want, 16);
	}
}

/* Valid IPv4 texts give the right 4 bytes and write nothing beyond them. */
static void test_parse_ipv4_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(fmt4_cases); i++) {
		__u8 got[16];

		memset(got, 0xAA, sizeof(got));
		assert_int_equal(parse_guarded(AF_INET, fmt4_cases[i].text, got), 0);
		assert_memory_equal(got, fmt4_cases[i].a, 4);
		for (int k = 4; k < 16; k++)
			assert_int_equal(got[k], 0xAA);
	}
}

struct parse_bad {
	int af;
	const char *text;
};

/* Texts a v1 header must not carry, each refused with -EINVAL. */
static const struct parse_bad parse_bad[] = {
	{ AF_INET, "01.2.3.4" },     { AF_INET, "1.2.3.04" },     { AF_INET, "1.2.3.00" },
	{ AF_INET, "256.1.1.1" },    { AF_INET, "1.2.3.256" },    { AF_INET, "1.2.3.999" },
	{ AF_INET, "1234.1.1.1" },   { AF_INET, "" },             { AF_INET, "1.2.3.4 " },
	{ AF_INET, " 1.2.3.4" },     { AF_INET, "1.2.3" },        { AF_INET, "1.2.3.4.5" },
	{ AF_INET, "1..2.3" },       { AF_INET, "1.2.3." },       { AF_INET, "a.b.c.d" },
	{ AF_INET, "0x1.2.3.4" },    { AF_INET, "1.2.3.-1" },     { AF_INET, "::1" },
	{ AF_INET, "1.2.3.4\n" },    { AF_INET, "1.2.3.4x" },     { AF_INET6, "" },
	{ AF_INET6, "1::2::3" },     { AF_INET6, "::1::" },       { AF_INET6, "1::2:3::" },
	{ AF_INET6, "12345::" },     { AF_INET6, "::12345" },     { AF_INET6, "1:2:3:4:5:6:7:8:9" },
	{ AF_INET6, "1:2:3:4:5:6:7" }, { AF_INET6, "1:2:3:4:5:6:7:8::" }, { AF_INET6, "::1:2:3:4:5:6:7:8" },
	{ AF_INET6, "1:2:3:4::5:6:7:8" }, { AF_INET6, ":1::" },   { AF_INET6, ":" },
	{ AF_INET6, "1:" },          { AF_INET6, ":::" },         { AF_INET6, "::1 " },
	{ AF_INET6, " ::1" },        { AF_INET6, "g::1" },        { AF_INET6, "::ffff:1.2.3" },
	{ AF_INET6, "::ffff:01.2.3.4" }, { AF_INET6, "::ffff:1.2.3.256" },
	{ AF_INET6, "1:2:3:4:5:6:7:1.2.3.4" }, { AF_INET6, "::1.2.3.4:5" }, { AF_INET6, "1.2.3.4" },
	{ AF_INET6, "::ffff:a.2.3.4" }, { AF_INET6, "1:2:3:4:5:6:7:8 " },
	{ AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
};

/* Every malformed text is refused, inet_pton agrees, and out is left alone. */
static void test_parse_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(parse_bad); i++) {
		__u8 got[16], pton[16];
		int rc;

		memset(got, 0xAA, sizeof(got));
		rc = parse_guarded(parse_bad[i].af, parse_bad[i].text, got);
		if (rc != -EINVAL)
			fail_msg("'%s' (af %d): got %d, want -EINVAL", parse_bad[i].text, parse_bad[i].af, rc);
		for (int k = 0; k < 16; k++)
			assert_int_equal(got[k], 0xAA);
		if (inet_pton(parse_bad[i].af, parse_bad[i].text, pton) != 0)
			fail_msg("test case '%s' is valid to inet_pton", parse_bad[i].text);
	}
}

/* AF_UNIX and AF_UNSPEC are not address families this parses. */
static void test_parse_bad_family(void **state)
{
	__u8 got[16];

	(void)state;
	assert_int_equal(parse_guarded(AF_UNIX, "1.2.3.4", got), -EAFNOSUPPORT);
	assert_int_equal(parse_guarded(AF_UNSPEC, "::1", got), -EAFNOSUPPORT);
}

/* Text of a in a random valid RFC 4291 form: padding, case, "::" anywhere legal, a dotted tail. */
static void random_ipv6_text(struct prng *r, const __u8 a[16], char *out)
{
	uint16_t g[8];
	int quad = prng_below(r, 4) == 0, groups = quad ? 6 : 8, gap = -1, gap_len = 0;
	char *p = out;

	for (int i = 0; i < 8; i++)
		g[i] = (uint16_t)(a[2 * i] << 8 | a[2 * i + 1]);
	if (prng_below(r, 4)) { /* "::" over a random sub-run of a random zero run */
		int start = (int)prng_below(r, (uint32_t)groups);

		while (start < groups && g[start])
			start++;
		if (start < groups) {
			int end = start;

			while (end < groups && !g[end])
				end++;
			gap = start;
			gap_len = 1 + (int)prng_below(r, (uint32_t)(end - start));
		}
	}
	for (int i = 0; i < groups; i++) {
		char hex[8];
		int w;

		if (i == gap) {
			p += sprintf(p, i == 0 ? "::" : ":");
			i += gap_len - 1;
			continue;
		}
		w = snprintf(hex, sizeof(hex), "%x", g[i]);
		w += (int)prng_below(r, (uint32_t)(5 - w)); /* 0..(4-digits) leading zeros */
		p += sprintf(p, prng_below(r, 2) ? "%0*x" : "%0*X", w, g[i]);
		if (i < groups - 1 || quad)
			*p++ = ':';
	}
	if (quad)
		p += sprintf(p, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
	*p = '\0';
}

/* Random valid non-canonical IPv6 texts parse to the same bytes as with inet_pton. */
static void test_parse_ipv6_forms_vs_glibc(void **state)
{
	struct prng r = { 4291 };

	(void)state;
	for (int t = 0; t < N_RANDOM; t++) {
		char text[64];
		__u8 a[16], got[16], pton[16];

		random_ipv6(&r, a);
		random_ipv6_text(&r, a, text);
		if (inet_pton(AF_INET6, text, pton) != 1 || memcmp(pton, a, 16))
			fail_msg("test generator wrote '%s', which glibc does not read back", text);
		if (parse_guarded(AF_INET6, text, got))
			fail_msg("'%s' refused", text);
		if (memcmp(got, a, 16))
			fail_msg("'%s' parsed to different bytes", text);
	}
}

/* One random edit (insert, delete, replace) of a valid text: accept exactly when inet_pton does. */
static void test_parse_mutations_vs_glibc(void **state)
{
	static const char alphabet[] = "0123456789abcdefABCDEFgx:.: -";
	struct prng r = { 0xED17 };

	(void)state;
	for (int t = 0; t < N_RANDOM; t++) {
		int af = prng_below(&r, 2) ? AF_INET6 : AF_INET;
		char text[72];
		__u8 a[16], got[16], pton[16];
		size_t n;
		uint32_t at;
		int ours, theirs;

		if (af == AF_INET6) {
			random_ipv6(&r, a);
			random_ipv6_text(&r, a, text);
		} else {
			prng_fill(&r, a, 4);
			sprintf(text, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
		}
		n = strlen(text);
		at = prng_below(&r, (uint32_t)n + 1);
		switch (prng_below(&r, 3)) {
		case 0: /* insert */
			memmove(text + at + 1, text + at, n - at + 1);
			text[at] = alphabet[prng_below(&r, sizeof(alphabet) - 1)];
			break;
		case 1: /* delete */
			if (at < n)
				memmove(text + at, text + at + 1, n - at);
			break;
		default: /* replace */
			if (at < n)
				text[at] = alphabet[prng_below(&r, sizeof(alphabet) - 1)];
			break;
		}
		ours = parse_guarded(af, text, got) == 0;
		theirs = inet_pton(af, text, pton) == 1;
		if (ours != theirs)
			fail_msg("'%s' (af %d): ppbpf_parse_ip %s, inet_pton %s", text, af, ours ? "accepts" : "refuses",
				 theirs ? "accepts" : "refuses");
		if (ours && memcmp(got, pton, af == AF_INET ? 4 : 16))
			fail_msg("'%s': different bytes from inet_pton", text);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_table),
		cmocka_unit_test(test_format_ipv6_rfc5952),
		cmocka_unit_test(test_format_ipv4),
		cmocka_unit_test(test_format_bad_family),
		cmocka_unit_test(test_format_ipv6_vs_glibc),
		cmocka_unit_test(test_format_ipv4_vs_glibc),
		cmocka_unit_test(test_parse_ipv6_valid),
		cmocka_unit_test(test_parse_ipv4_valid),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_bad_family),
		cmocka_unit_test(test_parse_ipv6_forms_vs_glibc),
		cmocka_unit_test(test_parse_mutations_vs_glibc),
	};

	return RUN_UNIT_CASES(argc, argv, tests);
}
