// SPDX-License-Identifier: MIT
/*
 * Status names and sentences: one of each for every status, all distinct,
 * names in lower_snake_case, and defined answers outside the range.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <ppbpf/ppbpf.h>
#include "cases.h"

/* Is s a lower_snake_case identifier: [a-z][a-z0-9]*(_[a-z0-9]+)* ? */
static int is_snake(const char *s)
{
	if (!(*s >= 'a' && *s <= 'z'))
		return 0;
	for (const char *p = s; *p; p++) {
		int lower = *p >= 'a' && *p <= 'z', digit = *p >= '0' && *p <= '9';

		if (*p == '_' && (p[1] == '_' || p[1] == '\0'))
			return 0;
		if (!lower && !digit && *p != '_')
			return 0;
	}
	return 1;
}

/* The checker itself: it must reject what is not lower_snake_case. */
static void test_snake_checker(void **state)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
		{ "ok", 1 },       { "v1_bad_port", 1 }, { "crc32c_mismatch", 1 }, { "", 0 },
		{ "Upper", 0 },    { "_lead", 0 },       { "trail_", 0 },          { "two__under", 0 },
		{ "has space", 0 }, { "1digit", 0 },     { "dash-ed", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (is_snake(cases[i].s) != cases[i].ok)
			fail_msg("is_snake(\"%s\") should be %d", cases[i].s, cases[i].ok);
}

/* Every status -1..PPBPF_E_LAST has a snake_case name and a non-empty sentence. */
static void test_every_status_named(void **state)
{
	(void)state;
	for (int s = PPBPF_E_INCOMPLETE; s >= PPBPF_E_LAST; s--) {
		const char *name = ppbpf_errname(s), *text = ppbpf_strerror(s);

		if (!name)
			fail_msg("status %d has no name", s);
		if (!is_snake(name))
			fail_msg("status %d: name \"%s\" is not lower_snake_case", s, name);
		if (!strcmp(name, "ok"))
			fail_msg("status %d is an error but is named \"ok\"", s);
		assert_non_null(text);
		if (!text[0] || !strcmp(text, "unknown status"))
			fail_msg("status %d: sentence \"%s\"", s, text);
	}
}

/* No two statuses share a name or a sentence. */
static void test_names_distinct(void **state)
{
	(void)state;
	for (int a = 0; a >= PPBPF_E_LAST; a--) {
		for (int b = a - 1; b >= PPBPF_E_LAST; b--) {
			if (!strcmp(ppbpf_errname(a), ppbpf_errname(b)))
				fail_msg("statuses %d and %d share name \"%s\"", a, b, ppbpf_errname(a));
			if (!strcmp(ppbpf_strerror(a), ppbpf_strerror(b)))
				fail_msg("statuses %d and %d share sentence \"%s\"", a, b, ppbpf_strerror(a));
		}
	}
}

/* The name the header documents as an example is the one for a bad v1 port. */
static void test_documented_name(void **state)
{
	(void)state;
	assert_string_equal(ppbpf_errname(PPBPF_E_V1_PORT), "v1_bad_port");
}

/* 0 and every positive value (a header length) are "ok". */
static void test_success_is_ok(void **state)
{
	static const int lens[] = { 0, 1, PPBPF_MIN_LEN, PPBPF_V1_MAX_LEN, PPBPF_V2_MAX_LEN, INT_MAX };

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		assert_string_equal(ppbpf_errname(lens[i]), "ok");
		assert_string_equal(ppbpf_strerror(lens[i]), ppbpf_strerror(0));
		assert_string_not_equal(ppbpf_strerror(lens[i]), "unknown status");
	}
}

/* Beyond PPBPF_E_LAST: no name, and the sentence "unknown status". */
static void test_out_of_range(void **state)
{
	static const int bad[] = { PPBPF_E_LAST - 1, PPBPF_E_LAST - 2, PPBPF_E_NO_ROOM + 1, PPBPF_E_KERNEL_LAST - 1,
				   -100, -65536, INT_MIN + 1, INT_MIN };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(ppbpf_errname(bad[i]));
		assert_string_equal(ppbpf_strerror(bad[i]), "unknown status");
	}
}

/* The kernel side's rejection codes: stable names, distinct from each other and from the parser's. */
static void test_kernel_codes(void **state)
{
	static const struct { int code; const char *name; } codes[] = {
		{ PPBPF_E_NO_ROOM, "no_room" },
		{ PPBPF_E_VERSION, "version_refused" },
		{ PPBPF_E_TIMEOUT, "timeout" },
		{ PPBPF_E_UNTRUSTED, "untrusted" },
		{ PPBPF_E_CHANGED, "changed" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_string_equal(ppbpf_errname(codes[i].code), codes[i].name);
		assert_string_not_equal(ppbpf_strerror(codes[i].code), "unknown status");
		for (int s = 0; s >= PPBPF_E_LAST; s--)
			assert_string_not_equal(ppbpf_errname(s), codes[i].name);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snake_checker),
		cmocka_unit_test(test_every_status_named),
		cmocka_unit_test(test_names_distinct),
		cmocka_unit_test(test_documented_name),
		cmocka_unit_test(test_success_is_ok),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_kernel_codes),
	};

	return RUN_UNIT_CASES(argc, argv, tests);
}
