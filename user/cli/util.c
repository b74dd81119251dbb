// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ppbpf %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'ppbpf %s --help'.\n", cmd);
	return EXIT_USAGE;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long hex_decode(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = 0;

	for (const char *p = hex; *p;) {
		int hi, lo;

		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == ':') {
			p++;
			continue;
		}
		hi = hex_nibble(p[0]);
		lo = hi < 0 ? -1 : hex_nibble(p[1]);
		if (lo < 0 || n >= cap)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | lo);
		p += 2;
	}
	return (long)n;
}

int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *p = hex ? s + 2 : s;
	unsigned int base = hex ? 16 : 10;

	/*
	 * Digits only: no sign, no space, no empty "0x", no leading zero in
	 * decimal ("010" could be read as octal); hex only after 0x. Anything
	 * else is not a number, rather than the number strtoull would make of it.
	 */
	if (!*p || (!hex && p[0] == '0' && p[1]))
		return -1;
	for (; *p; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0'
			: hex && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
			: hex && *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;

		if (d < 0 || v > (~0ULL - (unsigned int)d) / base)
			return -1;
		v = v * base + (unsigned int)d;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

void format_endpoint(char *out, size_t cap, int af, const __u8 *addr, __u16 port)
{
	char txt[PPBPF_ADDRSTRLEN] = "?";

	ppbpf_format_ip(af, addr, txt, sizeof(txt));
	snprintf(out, cap, af == AF_INET6 ? "[%s]:%u" : "%s:%u", txt, port);
}

int stored_addr_af(int sock_af, const __u8 *addr)
{
	static const __u8 zero12[12];

	return sock_af == AF_INET || !memcmp(addr + 4, zero12, 12) ? AF_INET : AF_INET6;
}
