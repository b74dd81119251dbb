// SPDX-License-Identifier: MIT
/* Decoding of the parser vectors' inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vectors.h"

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void bad_vector(const struct vector *v)
{
	fprintf(stderr, "malformed test vector '%s'\n", v->name);
	abort();
}

/* Hex with "{N*HH}" runs into out. */
static size_t decode_hex(const struct vector *v, __u8 *out, size_t cap)
{
	const char *p = v->hex;
	size_t n = 0;

	while (*p) {
		unsigned long count = 1;
		int hi, lo;

		if (*p == '{') {
			char *end;

			count = strtoul(p + 1, &end, 10);
			if (*end != '*')
				bad_vector(v);
			p = end + 1;
		}
		hi = nibble(p[0]);
		lo = hi < 0 ? -1 : nibble(p[1]);
		if (lo < 0 || n + count > cap)
			bad_vector(v);
		memset(out + n, hi << 4 | lo, count);
		n += count;
		p += 2;
		if (count > 1 || p[0] == '}') {
			if (*p != '}')
				bad_vector(v);
			p++;
		}
	}
	return n;
}

size_t vector_bytes(const struct vector *v, __u8 *out, size_t cap)
{
	size_t n;

	if (v->hex)
		return decode_hex(v, out, cap);
	n = strlen(v->text);
	if (n > cap)
		bad_vector(v);
	memcpy(out, v->text, n);
	return n;
}

__u32 vector_max(const struct vector *v)
{
	return v->max ? v->max : PPBPF_V2_MAX_LEN;
}
