// SPDX-License-Identifier: MIT
/* Families and addresses: names, canonical text, strict parsing. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <ppbpf/ppbpf.h>

static const char *const family_names[] = {
	[PPBPF_FAM_UNSPEC] = "UNSPEC",   [PPBPF_FAM_TCP4] = "TCP4",
	[PPBPF_FAM_TCP6] = "TCP6",       [PPBPF_FAM_UDP4] = "UDP4",
	[PPBPF_FAM_UDP6] = "UDP6",       [PPBPF_FAM_UNIX_STREAM] = "UNIX",
	[PPBPF_FAM_UNIX_DGRAM] = "UNIX", [PPBPF_FAM_UNKNOWN] = "UNKNOWN",
};

const char *ppbpf_family_name(int family)
{
	if (family < 0 || family >= (int)(sizeof(family_names) / sizeof(family_names[0])))
		return NULL;
	return family_names[family];
}

int ppbpf_family_af(int family)
{
	switch (family) {
	case PPBPF_FAM_TCP4:
	case PPBPF_FAM_UDP4:
		return AF_INET;
	case PPBPF_FAM_TCP6:
	case PPBPF_FAM_UDP6:
		return AF_INET6;
	case PPBPF_FAM_UNIX_STREAM:
	case PPBPF_FAM_UNIX_DGRAM:
		return AF_UNIX;
	default:
		return AF_UNSPEC;
	}
}

/* Decimal text of v at p; returns the new end. */
static char *put_dec(char *p, unsigned int v)
{
	char tmp[10];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_ipv4(char *p, const __u8 *a)
{
	for (int i = 0; i < 4; i++) {
		if (i)
			*p++ = '.';
		p = put_dec(p, a[i]);
	}
	return p;
}

/* Hex text of a group without leading zeros. */
static char *put_hex16(char *p, unsigned int v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 12;

	while (shift > 0 && !(v >> shift))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		*p++ = digits[(v >> shift) & 0xf];
	return p;
}

static char *put_ipv6(char *p, const __u8 *a)
{
	static const __u8 mapped[12] = { [10] = 0xff, [11] = 0xff };
	int best = -1, best_len = 0;

	if (!memcmp(a, mapped, sizeof(mapped))) { /* RFC 5952 section 5 */
		memcpy(p, "::ffff:", 7);
		return put_ipv4(p + 7, a + 12);
	}
	/* The longest run of two or more zero groups; the first one on a tie. */
	for (int i = 0; i < 8;) {
		int j = i;

		while (j < 8 && !a[2 * j] && !a[2 * j + 1])
			j++;
		if (j - i > best_len && j - i >= 2) {
			best = i;
			best_len = j - i;
		}
		i = j > i ? j : i + 1;
	}
	for (int i = 0; i < 8; i++) {
		if (i == best) {
			*p++ = ':';
			if (i == 0)
				*p++ = ':';
			i += best_len - 1;
			continue;
		}
		p = put_hex16(p, (unsigned int)a[2 * i] << 8 | a[2 * i + 1]);
		if (i < 7)
			*p++ = ':';
	}
	return p;
}

int ppbpf_format_ip(int af, const void *addr, char *out, size_t cap)
{
	char tmp[PPBPF_ADDRSTRLEN];
	size_t n;

	if (af == AF_INET)
		n = (size_t)(put_ipv4(tmp, addr) - tmp);
	else if (af == AF_INET6)
		n = (size_t)(put_ipv6(tmp, addr) - tmp);
	else
		return -EAFNOSUPPORT;
	if (n + 1 > cap)
		return -ENOSPC;
	memcpy(out, tmp, n);
	out[n] = '\0';
	return (int)n;
}

int ppbpf_parse_ip(int af, const char *text, void *out)
{
	/* The field readers need to see a terminator, so parse a copy ending in a space. */
	__u8 line[PPBPF_ADDRSTRLEN + 1];
	struct ppbpf_ip ip;
	size_t n = strlen(text);
	__u32 pos = 0;
	int rc;

	if (n >= PPBPF_ADDRSTRLEN)
		return -EINVAL;
	memcpy(line, text, n);
	line[n] = ' ';
	if (af == AF_INET)
		rc = ppbpf_text_ipv4(line, (__u32)n + 1, &pos, &ip, PPBPF_E_V1_ADDR);
	else if (af == AF_INET6)
		rc = ppbpf_text_ipv6(line, (__u32)n + 1, &pos, &ip, PPBPF_E_V1_ADDR);
	else
		return -EAFNOSUPPORT;
	if (rc || pos != n)
		return -EINVAL;
	memcpy(out, ip.b, af == AF_INET ? 4 : 16);
	return 0;
}
