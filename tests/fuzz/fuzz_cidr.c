// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the CLI's CIDR parser (user/cli/cidr.c), the text of
 * every --trust block. Invariants, besides no crash and no over-read:
 *  - what is accepted is a valid block: family IPv4 or IPv6, prefix within
 *    it, no bit set past the prefix, never v4-mapped (it would match nothing);
 *  - the text it came from is strict: no sign, space or leading zero in the
 *    prefix, and the address part is one that inet_pton reads as the same
 *    bytes (no form of our own that the C library would read otherwise);
 *  - the block formats and re-parses to itself, and its text is a fixed point;
 *  - a refused text always says why.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cidr.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct cidr c, again;
	char *text, txt[CIDR_STRLEN], txt2[CIDR_STRLEN], addr[CIDR_STRLEN];
	const char *why = NULL, *slash;
	unsigned char bytes[16];
	int rc, max;

	if (size > 256)
		return 0;
	text = malloc(size + 1); /* exact size: ASan sees any over-read */
	memcpy(text, data, size);
	text[size] = '\0';
	rc = cidr_parse(text, &c, &why);
	if (rc) {
		CHECK(why && *why);
		free(text);
		return 0;
	}
	size = strlen(text); /* (a C string: it ends at the first NUL, and so does what was parsed) */
	max = c.af == AF_INET ? 32 : 128;
	CHECK(c.af == AF_INET || c.af == AF_INET6);
	CHECK(c.bits >= 0 && c.bits <= max);
	for (int i = c.bits; i < 128; i++)
		CHECK(!(c.addr[i / 8] & (0x80 >> (i % 8))));
	CHECK(!(c.af == AF_INET6 && c.bits >= 96 && !memcmp(c.addr, mapped, 12)));
	/* the text: an address inet_pton agrees on, then nothing or "/" and plain decimal */
	slash = strchr(text, '/');
	CHECK((size_t)(slash ? slash - text : (long)size) < sizeof(addr));
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash ? slash - text : (long)size), text);
	CHECK(inet_pton(c.af, addr, bytes) == 1);
	CHECK(!memcmp(bytes, c.addr, c.af == AF_INET ? 4 : 16));
	if (slash) {
		CHECK(slash[1] >= '0' && slash[1] <= '9');
		CHECK(slash[1] != '0' || slash[2] == '\0');
		for (const char *p = slash + 1; *p; p++)
			CHECK(*p >= '0' && *p <= '9');
		CHECK(atoi(slash + 1) == c.bits);
	} else {
		CHECK(c.bits == max);
	}
	/* canonical text, read back as the same block, and a fixed point */
	cidr_format(&c, txt, sizeof(txt));
	CHECK(cidr_parse(txt, &again, NULL) == 0);
	CHECK(cidr_equal(&c, &again));
	cidr_format(&again, txt2, sizeof(txt2));
	CHECK(!strcmp(txt, txt2));
	free(text);
	return 0;
}
