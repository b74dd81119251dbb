// SPDX-License-Identifier: MIT
/* Address blocks (CIDRs) as the policy takes them: strict text in, canonical text out. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <ppbpf/ppbpf.h>
#include "cidr.h"

static int fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

/* A prefix length: 1 to 3 decimal digits, no leading zero, at most max. -1 if not. */
static int prefix_len(const char *s, int max)
{
	int v = 0, n = 0;

	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n == 3)
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	if (!n || (n > 1 && s[0] == '0') || v > max)
		return -1;
	return v;
}

int cidr_parse(const char *text, struct cidr *out, const char **why)
{
	static const __u8 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	char addr[CIDR_STRLEN];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	int max;

	memset(out, 0, sizeof(*out));
	if (!n)
		return fail(why, "no address");
	if (n >= sizeof(addr))
		return fail(why, "not an IPv4 or IPv6 address");
	memcpy(addr, text, n);
	addr[n] = '\0';
	if (!ppbpf_parse_ip(AF_INET, addr, out->addr)) {
		out->af = AF_INET;
		max = 32;
	} else if (!ppbpf_parse_ip(AF_INET6, addr, out->addr)) {
		out->af = AF_INET6;
		max = 128;
		if (strchr(addr, '.'))
			return fail(why, "IPv4 text inside an IPv6 address: write the IPv4 address alone, "
					 "or the IPv6 one in hex");
	} else {
		return fail(why, strchr(addr, '%') ? "an address with a zone (%): zones are not matched"
						    : "not an IPv4 or IPv6 address (IPv4: no leading zeros)");
	}
	out->bits = max;
	if (slash) {
		int bits = prefix_len(slash + 1, max);

		if (bits < 0)
			return fail(why, max == 32 ? "the prefix length must be 0..32, in plain decimal"
						   : "the prefix length must be 0..128, in plain decimal");
		out->bits = bits;
	}
	for (int i = out->bits; i < max; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return fail(why, "host bits are set under the prefix: write the network (the address "
					 "with the bits past the prefix cleared), or the address alone");
	if (out->af == AF_INET6 && out->bits >= 96 && !memcmp(out->addr, mapped, 12))
		return fail(why, "a v4-mapped IPv6 block (::ffff:0:0/96) never matches: IPv4 peers, also of "
				 "dual-stack sockets, are matched as IPv4; write the IPv4 address");
	return 0;
}

void cidr_format(const struct cidr *c, char *out, size_t cap)
{
	char txt[PPBPF_ADDRSTRLEN] = "?";

	ppbpf_format_ip(c->af, c->addr, txt, sizeof(txt));
	snprintf(out, cap, "%s/%d", txt, c->bits);
}

int cidr_equal(const struct cidr *a, const struct cidr *b)
{
	return a->af == b->af && a->bits == b->bits && !memcmp(a->addr, b->addr, a->af == AF_INET ? 4 : 16);
}

int cidr_contains(const struct cidr *c, int af, const __u8 *addr)
{
	int full = c->bits / 8, rest = c->bits % 8;

	if (c->af != af || memcmp(c->addr, addr, (size_t)full))
		return 0;
	return !rest || ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0;
}
