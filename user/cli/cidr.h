/* SPDX-License-Identifier: MIT */
/* Address blocks (CIDRs) as the policy takes them: strict text in, canonical text out. */
#ifndef PPBPF_CLI_CIDR_H
#define PPBPF_CLI_CIDR_H

#include <stddef.h>
#include <linux/types.h>

/* An address block. */
struct cidr {
	int af;        /* AF_INET or AF_INET6 */
	__u8 addr[16]; /* network order; no bit set past `bits` */
	int bits;
};

/* Longest text cidr_format writes, with its NUL. */
#define CIDR_STRLEN 64

/*
 * "192.0.2.0/24", "2001:db8::/32", or a bare address (/32, /128). Strict, so
 * that nothing is read as something else: the address in the forms of the
 * PROXY v1 line (no leading zeros in IPv4, no zone, no IPv4 text inside
 * IPv6), a prefix length of decimal digits without a sign, space or leading
 * zero, no host bits set under the prefix, and no v4-mapped IPv6
 * (::ffff:0:0/96: IPv4 peers are always matched as IPv4, so it would match
 * nothing). 0, or -EINVAL with a reason in *why (a static string) if why.
 */
int cidr_parse(const char *text, struct cidr *out, const char **why);
/* Canonical text ("a.b.c.d/n", RFC 5952 IPv6 "/n"), which cidr_parse reads back as the same block. */
void cidr_format(const struct cidr *c, char *out, size_t cap);
/* Are two blocks the same? */
int cidr_equal(const struct cidr *a, const struct cidr *b);
/* Is addr, of family af (4 or 16 bytes, network order), inside block c? */
int cidr_contains(const struct cidr *c, int af, const __u8 *addr);

#endif
