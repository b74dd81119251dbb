/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol parser (HAProxy's proxy-protocol.txt, v1 and v2), shared
 * unchanged by the BPF programs and by libppbpf: freestanding C, no libc, no
 * allocation, every loop bounded, every read checked against an explicit
 * length first.
 *
 * Contract of ppbpf_parse() (after picohttpparser):
 *   > 0                 a complete, valid header of that many bytes;
 *   PPBPF_E_INCOMPLETE  a valid prefix: hdr->need says at least how many
 *                       more bytes are needed;
 *   PPBPF_E_NOT_PROXY   these bytes can never start a PROXY header;
 *   other < 0           a PROXY header that is wrong, one code per way.
 * The input is only read, never beyond len.
 */
#ifndef PPBPF_PARSE_H
#define PPBPF_PARSE_H

#include "target.h"
#include "crc32c.h"

/* ---- wire constants ---------------------------------------------------- */

/* A v1 line may not exceed this, CRLF included. */
#define PPBPF_V1_MAX_LEN 107
/* Fixed part of a v2 header: signature, ver/cmd, fam, length. */
#define PPBPF_V2_FIXED_LEN 16
/* Largest v2 header the wire format can express. */
#define PPBPF_V2_MAX_LEN (PPBPF_V2_FIXED_LEN + 65535)
/* Shortest possible header: "PROXY UNKNOWN\r\n". */
#define PPBPF_MIN_LEN 15
/* Shortest complete lines per v1 protocol, for the "need" estimate. */
#define PPBPF_V1_MIN_TCP4 32 /* "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n" */
#define PPBPF_V1_MIN_TCP6 22 /* "PROXY TCP6 :: :: 0 0\r\n" */

/* v2 address block sizes by family. */
#define PPBPF_V2_ADDR_INET 12
#define PPBPF_V2_ADDR_INET6 36
#define PPBPF_V2_ADDR_UNIX 216
/* Length of each AF_UNIX path field in a v2 address block. */
#define PPBPF_UNIX_PATH_LEN 108

/* v2 commands (low nibble of byte 13). */
#define PPBPF_CMD_LOCAL 0x0
#define PPBPF_CMD_PROXY 0x1

/* v2 TLV types (proxy-protocol.txt 2.2, plus the cloud ones in use). */
#define PPBPF_TLV_ALPN 0x01
#define PPBPF_TLV_AUTHORITY 0x02
#define PPBPF_TLV_CRC32C 0x03
#define PPBPF_TLV_NOOP 0x04
#define PPBPF_TLV_UNIQUE_ID 0x05
#define PPBPF_TLV_SSL 0x20
#define PPBPF_TLV_NETNS 0x30
#define PPBPF_TLV_GCP 0xE0   /* Private Service Connect id: 8 bytes, big endian */
#define PPBPF_TLV_AWS 0xEA   /* subtype byte, then data */
#define PPBPF_TLV_AZURE 0xEE /* subtype byte, then data */

/* SSL sub-TLV types, inside PPBPF_TLV_SSL after its 5-byte client/verify head. */
#define PPBPF_SSL_VERSION 0x21
#define PPBPF_SSL_CN 0x22
#define PPBPF_SSL_CIPHER 0x23
#define PPBPF_SSL_SIG_ALG 0x24
#define PPBPF_SSL_KEY_ALG 0x25
#define PPBPF_SSL_GROUP 0x26
#define PPBPF_SSL_SIG_SCHEME 0x27
#define PPBPF_SSL_CLIENT_CERT 0x28

/* Bits of the SSL TLV's client field. */
#define PPBPF_SSL_CLIENT_SSL 0x01
#define PPBPF_SSL_CLIENT_CERT_CONN 0x02
#define PPBPF_SSL_CLIENT_CERT_SESS 0x04

/* Cloud TLV subtypes. */
#define PPBPF_AWS_VPCE_ID 0x01       /* US-ASCII VPC endpoint id */
#define PPBPF_AZURE_LINKID 0x01      /* 4-byte little-endian private endpoint link id */
/* A UNIQUE_ID value may not exceed this. */
#define PPBPF_UNIQUE_ID_MAX 128
/* TLV type + 16-bit length. */
#define PPBPF_TLV_HDR_LEN 3
/* SSL value head: client (1) + verify (4). */
#define PPBPF_SSL_HEAD_LEN 5

/* ---- results ------------------------------------------------------------ */

/* Status codes. Stable: names and values are part of the CLI and library ABI. */
enum ppbpf_status {
	PPBPF_E_INCOMPLETE = -1,     /* valid so far; more bytes needed */
	PPBPF_E_NOT_PROXY = -2,      /* not a PROXY header at all */
	PPBPF_E_TOO_LARGE = -3,      /* header longer than the caller allows */
	PPBPF_E_V1_TOO_LONG = -4,    /* v1: no CRLF within 107 bytes */
	PPBPF_E_V1_PROTO = -5,       /* v1: protocol is not TCP4, TCP6 or UNKNOWN */
	PPBPF_E_V1_SYNTAX = -6,      /* v1: missing, extra or doubled space; missing field */
	PPBPF_E_V1_CRLF = -7,        /* v1: lone CR or LF where CRLF belongs */
	PPBPF_E_V1_ADDR = -8,        /* v1: address malformed or of the wrong family */
	PPBPF_E_V1_PORT = -9,        /* v1: port malformed, leading zero or > 65535 */
	PPBPF_E_V2_VERSION = -10,    /* v2: version nibble is not 2 */
	PPBPF_E_V2_COMMAND = -11,    /* v2: command is neither LOCAL nor PROXY */
	PPBPF_E_V2_FAMILY = -12,     /* v2: family or transport nibble out of range */
	PPBPF_E_V2_ADDR_LEN = -13,   /* v2: length shorter than the family's address block */
	PPBPF_E_TLV_TRUNCATED = -14, /* v2: a TLV runs past the end of the header */
	PPBPF_E_CRC32C_LEN = -15,    /* v2: CRC32C TLV value is not exactly 4 bytes */
	PPBPF_E_CRC32C_DUP = -16,    /* v2: more than one CRC32C TLV */
	PPBPF_E_CRC32C = -17,        /* v2: CRC32C does not match the header */
	PPBPF_E_UNIQUE_ID_LEN = -18, /* v2: UNIQUE_ID longer than 128 bytes */
	PPBPF_E_SSL = -19,           /* v2: SSL TLV shorter than 5 bytes or sub-TLV overrun */
};
/* Most negative status: codes run from -1 down to this. */
#define PPBPF_E_LAST PPBPF_E_SSL

/* What the addresses of a parsed header are. */
enum ppbpf_family {
	PPBPF_FAM_UNSPEC = 0,      /* none: v2 AF_UNSPEC, LOCAL, or a fallback; use the real peer */
	PPBPF_FAM_TCP4 = 1,        /* v1 TCP4, v2 0x11 */
	PPBPF_FAM_TCP6 = 2,        /* v1 TCP6, v2 0x21 */
	PPBPF_FAM_UDP4 = 3,        /* v2 0x12 */
	PPBPF_FAM_UDP6 = 4,        /* v2 0x22 */
	PPBPF_FAM_UNIX_STREAM = 5, /* v2 0x31: paths at addr_off */
	PPBPF_FAM_UNIX_DGRAM = 6,  /* v2 0x32: paths at addr_off */
	PPBPF_FAM_UNKNOWN = 7,     /* v1 UNKNOWN; use the real peer */
};

/* An address, network order; IPv4 uses the first 4 bytes. */
struct ppbpf_ip {
	__u8 b[16];
};

/* A parsed header. Offsets point into the buffer that was parsed. */
struct ppbpf_hdr {
	__u32 header_len; /* bytes of the header, CRLF or TLVs included */
	__u32 need;       /* after PPBPF_E_INCOMPLETE: at least this many more bytes */
	__u8 version;     /* 1 or 2 */
	__u8 command;     /* PPBPF_CMD_PROXY, or PPBPF_CMD_LOCAL (v2 only) */
	__u8 family;      /* enum ppbpf_family */
	__u8 fam_byte;    /* v2: family/transport byte as sent; v1: 0 */
	__u16 src_port;   /* host order; TCP/UDP families only */
	__u16 dst_port;
	union {
		__u8 src_addr[16]; /* network order; IPv4 in the first 4 bytes */
		struct ppbpf_ip src_ip;
	};
	union {
		__u8 dst_addr[16];
		struct ppbpf_ip dst_ip;
	};
	__u32 addr_off;   /* v2: offset of the address block (UNIX paths live there) */
	__u32 tlv_off;    /* v2: TLVs are buf[tlv_off, tlv_off + tlv_len) */
	__u32 tlv_len;
	__u32 tlv_count;  /* v2: top-level TLVs in that range */
};

/* ---- small readers -------------------------------------------------------- */

/* Big-endian 16-bit value at buf[i]. */
PPBPF_INLINE __u32 ppbpf_be16(const ppbpf_buf_t *buf, __u32 i)
{
	return (__u32)PPBPF_AT(buf, i) << 8 | PPBPF_AT(buf, i + 1);
}

/* Big-endian 32-bit value at buf[i]. */
PPBPF_INLINE __u32 ppbpf_be32(const ppbpf_buf_t *buf, __u32 i)
{
	return ppbpf_be16(buf, i) << 16 | ppbpf_be16(buf, i + 2);
}

PPBPF_INLINE int ppbpf_is_digit(__u8 c)
{
	return (__u8)(c - '0') < 10;
}

/* A hex digit's value + 1 by byte, 0 for other bytes: one load instead of three tests. */
#define PPBPF_HX(c) [c] = (c) - '0' + 1
#define PPBPF_HXL(c) [c] = (c) - 'a' + 11, [(c) - 32] = (c) - 'a' + 11
static const __u8 ppbpf_hex_table[256] = {
	PPBPF_HX('0'),  PPBPF_HX('1'),  PPBPF_HX('2'),  PPBPF_HX('3'),  PPBPF_HX('4'),  PPBPF_HX('5'),
	PPBPF_HX('6'),  PPBPF_HX('7'),  PPBPF_HX('8'),  PPBPF_HX('9'),  PPBPF_HXL('a'), PPBPF_HXL('b'),
	PPBPF_HXL('c'), PPBPF_HXL('d'), PPBPF_HXL('e'), PPBPF_HXL('f'),
};

/* Value of a hex digit, or -1. */
PPBPF_INLINE int ppbpf_hex_val(__u8 c)
{
	return (int)ppbpf_hex_table[c] - 1;
}

/* What ppbpf_peek() returns past the end of the input: matches no byte class. */
#define PPBPF_END 0x100u

/*
 * Byte i of the input, or PPBPF_END past its end. Field readers come in two
 * flavours: checked = 1 tests the end on every byte; checked = 0 is used when
 * the caller saw that the field's longest form (and its terminator) is inside
 * the input, so the test can go. Callers pass a constant, so each flavour
 * compiles to its own code.
 */
PPBPF_INLINE __u32 ppbpf_peek(const ppbpf_buf_t *buf, __u32 len, __u32 i, int checked)
{
	if (checked && i >= len)
		return PPBPF_END;
	return PPBPF_AT(buf, i);
}

/* Are more than n bytes left at pos? Then a field of at most n bytes needs no end checks. */
PPBPF_INLINE int ppbpf_room(__u32 len, __u32 pos, __u32 n)
{
	return pos < len && len - pos > n;
}

/*
 * A decimal number of 1..max digits at *pos, no leading zero, not followed
 * by another digit. Returns its value, err, or PPBPF_E_INCOMPLETE if the
 * input ends where a digit could still come.
 */
PPBPF_INLINE int ppbpf_number(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, int max, int err, int checked)
{
	__u32 p = *pos, v = 0, c = 0;
	int d;

#pragma GCC unroll 5 /* max is a constant; gcc leaves the loop rolled otherwise */
	for (d = 0; d < max; d++) {
		c = ppbpf_peek(buf, len, p, checked) - '0';
		if (c > 9)
			break;
		v = v * 10 + c;
		p++;
	}
	if (d == 0)
		return c == PPBPF_END - '0' ? PPBPF_E_INCOMPLETE : err;
	if (d > 1 && PPBPF_AT(buf, *pos) == '0') /* leading zero */
		return err;
	if (d == max && ppbpf_peek(buf, len, p, checked) - '0' <= 9) /* one digit too many */
		return err;
	*pos = p;
	return (int)v;
}

/* The 12-byte v2 signature. */
#define PPBPF_V2_SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
#define PPBPF_V2_SIG_LEN 12

/* Do the first n (<= 12) bytes match the v2 signature? */
PPBPF_INLINE int ppbpf_v2_sig_prefix(const ppbpf_buf_t *buf, __u32 n)
{
	for (__u32 i = 0; i < PPBPF_V2_SIG_LEN; i++) {
		if (i >= n)
			break;
		if (PPBPF_AT(buf, i) != (__u8)PPBPF_V2_SIG[i])
			return 0;
	}
	return 1;
}

/* Do the first 12 bytes match the v2 signature? The hot path: one compare on hosts. */
PPBPF_INLINE int ppbpf_v2_sig(const ppbpf_buf_t *buf)
{
#ifdef __bpf__
	return ppbpf_v2_sig_prefix(buf, PPBPF_V2_SIG_LEN);
#else
	return __builtin_memcmp(buf, PPBPF_V2_SIG, PPBPF_V2_SIG_LEN) == 0;
#endif
}

/* ---- v1 text fields --------------------------------------------------------
 * Each field reader starts at *pos, stops at the first byte that cannot extend
 * the field, and returns 0, PPBPF_E_INCOMPLETE when the input ends while the
 * field is still a valid prefix, or its error code.
 */

/* A dotted quad: 4 decimal octets 0..255, no leading zeros. */
PPBPF_INLINE int ppbpf_text_ipv4_(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, struct ppbpf_ip *out, int err,
				  int checked)
{
	__u32 p = *pos;

	for (int o = 0; o < 4; o++) {
		int v;

		if (o) {
			__u32 c = ppbpf_peek(buf, len, p, checked);

			if (c != '.')
				return c == PPBPF_END ? PPBPF_E_INCOMPLETE : err;
			p++;
		}
		v = ppbpf_number(buf, len, &p, 3, err, checked);
		if (v < 0)
			return v;
		if (v > 255)
			return err;
		out->b[o & 3] = (__u8)v;
	}
	*pos = p;
	return 0;
}

/* Longest dotted quad. */
#define PPBPF_TEXT_IPV4_MAX 15

PPBPF_SUBPROG int ppbpf_text_ipv4(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, struct ppbpf_ip *out, int err)
{
	PPBPF_ARGS_NONNULL(buf && pos && out, err);
	if (ppbpf_room(len, *pos, PPBPF_TEXT_IPV4_MAX))
		return ppbpf_text_ipv4_(buf, len, pos, out, err, 0);
	return ppbpf_text_ipv4_(buf, len, pos, out, err, 1);
}

/*
 * 1-4 hex digits at *pos. Returns digits << 16 | value (0 if no digit), or
 * PPBPF_E_INCOMPLETE, or err when a fifth digit follows. One packed return
 * value keeps the group in a register.
 */
PPBPF_SUBPROG int ppbpf_text_hex16(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, int err, int checked)
{
	__u32 p, v = 0;
	int d;

	PPBPF_ARGS_NONNULL(buf && pos, err);
	p = *pos;

	for (d = 0; d < 5; d++) {
		__u32 c = ppbpf_peek(buf, len, p, checked);
		int h;

		if (c == PPBPF_END)
			return PPBPF_E_INCOMPLETE;
		h = ppbpf_hex_val((__u8)c);
		if (h < 0)
			break;
		if (d == 4)
			return err;
		v = v << 4 | (__u32)h;
		p++;
	}
	*pos = p;
	return d << 16 | (int)v;
}

/*
 * An IPv6 address: up to 8 groups of 1-4 hex digits, at most one "::", and
 * optionally a dotted quad as the last 32 bits (what inet_ntop prints for
 * v4-mapped addresses). Exactly 128 bits must result.
 */
PPBPF_INLINE int ppbpf_text_ipv6_(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, struct ppbpf_ip *out, int err,
				  int checked)
{
	__u16 g[8] = {0};
	__u32 p = *pos, c;
	int n = 0, gap = -1;

	c = ppbpf_peek(buf, len, p, checked);
	if (c == ':') { /* leading "::" */
		c = ppbpf_peek(buf, len, p + 1, checked);
		if (c != ':')
			return c == PPBPF_END ? PPBPF_E_INCOMPLETE : err;
		gap = 0;
		p += 2;
		c = ppbpf_peek(buf, len, p, checked);
		if (c == PPBPF_END)
			return PPBPF_E_INCOMPLETE;
		if (ppbpf_hex_val((__u8)c) < 0)
			goto expand; /* just "::" */
	}
	for (int k = 0; k < 8; k++) {
		__u32 start = p;
		int r = ppbpf_text_hex16(buf, len, &p, err, checked);

		if (r < 0)
			return r;
		if (r >> 16 == 0)
			return err;
		c = ppbpf_peek(buf, len, p, checked);
		if (c == '.') { /* this group was the first octet of a dotted quad */
			struct ppbpf_ip q;
			int rc;

			if (n > 6)
				return err;
			p = start;
			rc = ppbpf_text_ipv4(buf, len, &p, &q, err);
			if (rc)
				return rc;
			g[n & 7] = (__u16)(q.b[0] << 8 | q.b[1]);
			g[(n + 1) & 7] = (__u16)(q.b[2] << 8 | q.b[3]);
			n += 2;
			break;
		}
		g[n & 7] = (__u16)r;
		n++;
		if (c != ':')
			break;
		if (n == 8) /* a ninth group would follow */
			return err;
		p++;
		c = ppbpf_peek(buf, len, p, checked);
		if (c == PPBPF_END)
			return PPBPF_E_INCOMPLETE;
		if (c == ':') {
			if (gap >= 0) /* a second "::" */
				return err;
			gap = n;
			p++;
			c = ppbpf_peek(buf, len, p, checked);
			if (c == PPBPF_END)
				return PPBPF_E_INCOMPLETE;
			if (ppbpf_hex_val((__u8)c) < 0)
				break; /* trailing "::" */
		}
	}
	if (gap < 0 ? n != 8 : n > 7)
		return err;
expand:
	/* Groups before the gap stay, the gap is 8 - n zero groups, the rest follow. */
	for (int i = 0; i < 8; i++) {
		__u16 v = 0;

		if (gap < 0 || i < gap)
			v = g[i & 7];
		else if (i >= gap + 8 - n)
			v = g[(i - (8 - n)) & 7];
		out->b[2 * i] = (__u8)(v >> 8);
		out->b[2 * i + 1] = (__u8)v;
	}
	*pos = p;
	return 0;
}

/* Longest IPv6 text: 6 groups and a dotted quad. */
#define PPBPF_TEXT_IPV6_MAX 45

PPBPF_SUBPROG int ppbpf_text_ipv6(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, struct ppbpf_ip *out, int err)
{
	PPBPF_ARGS_NONNULL(buf && pos && out, err);
	if (ppbpf_room(len, *pos, PPBPF_TEXT_IPV6_MAX))
		return ppbpf_text_ipv6_(buf, len, pos, out, err, 0);
	return ppbpf_text_ipv6_(buf, len, pos, out, err, 1);
}

/* A decimal port 0..65535 without leading zeros. */
PPBPF_SUBPROG int ppbpf_text_port(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, __u16 *out)
{
	int v;

	PPBPF_ARGS_NONNULL(buf && pos && out, PPBPF_E_V1_PORT);
	if (ppbpf_room(len, *pos, 5))
		v = ppbpf_number(buf, len, pos, 5, PPBPF_E_V1_PORT, 0);
	else
		v = ppbpf_number(buf, len, pos, 5, PPBPF_E_V1_PORT, 1);
	if (v < 0)
		return v;
	if (v > 65535)
		return PPBPF_E_V1_PORT;
	*out = (__u16)v;
	return 0;
}

/*
 * The byte that must follow a field. A different byte is charged to the
 * field (err), unless it is a separator in the wrong place.
 */
PPBPF_INLINE int ppbpf_v1_sep(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, __u8 want, int err)
{
	__u8 c;

	if (*pos >= len)
		return PPBPF_E_INCOMPLETE;
	c = PPBPF_AT(buf, *pos);
	if (c == want) {
		(*pos)++;
		/* a space must be followed by a field, not by more space or the line end */
		if (want == ' ' && *pos < len) {
			c = PPBPF_AT(buf, *pos);
			if (c == ' ' || c == '\r' || c == '\n')
				return PPBPF_E_V1_SYNTAX;
		}
		return 0;
	}
	if (c == '\n' || (c == '\r' && want == '\n'))
		return PPBPF_E_V1_CRLF;
	if (c == ' ' || c == '\r')
		return PPBPF_E_V1_SYNTAX;
	return err;
}

/* Literal bytes lit[0..n) at *pos. */
PPBPF_INLINE int ppbpf_v1_lit(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, const char *lit, __u32 n, int err)
{
#pragma GCC unroll 8
	for (__u32 i = 0; i < 8; i++) {
		if (i >= n)
			break;
		if (*pos + i >= len)
			return PPBPF_E_INCOMPLETE;
		if (PPBPF_AT(buf, *pos + i) != (__u8)lit[i])
			return err;
	}
	*pos += n;
	return 0;
}

/* "src dst sport dport\r\n" for TCP4 (v6 = 0) or TCP6 (v6 = 1). */
PPBPF_SUBPROG int ppbpf_v1_tcp(const ppbpf_buf_t *buf, __u32 len, __u32 *pos, int v6, struct ppbpf_hdr *h)
{
	int rc;

	PPBPF_ARGS_NONNULL(buf && pos && h, PPBPF_E_V1_ADDR);
	if (v6)
		rc = ppbpf_text_ipv6(buf, len, pos, &h->src_ip, PPBPF_E_V1_ADDR);
	else
		rc = ppbpf_text_ipv4(buf, len, pos, &h->src_ip, PPBPF_E_V1_ADDR);
	if (!rc)
		rc = ppbpf_v1_sep(buf, len, pos, ' ', PPBPF_E_V1_ADDR);
	if (rc)
		return rc;
	if (v6)
		rc = ppbpf_text_ipv6(buf, len, pos, &h->dst_ip, PPBPF_E_V1_ADDR);
	else
		rc = ppbpf_text_ipv4(buf, len, pos, &h->dst_ip, PPBPF_E_V1_ADDR);
	if (!rc)
		rc = ppbpf_v1_sep(buf, len, pos, ' ', PPBPF_E_V1_ADDR);
	if (!rc)
		rc = ppbpf_text_port(buf, len, pos, &h->src_port);
	if (!rc)
		rc = ppbpf_v1_sep(buf, len, pos, ' ', PPBPF_E_V1_PORT);
	if (!rc)
		rc = ppbpf_text_port(buf, len, pos, &h->dst_port);
	if (!rc)
		rc = ppbpf_v1_sep(buf, len, pos, '\r', PPBPF_E_V1_PORT);
	if (!rc)
		rc = ppbpf_v1_sep(buf, len, pos, '\n', PPBPF_E_V1_CRLF);
	return rc;
}

/* "UNKNOWN" is followed by anything up to the first CRLF. */
PPBPF_INLINE int ppbpf_v1_unknown(const ppbpf_buf_t *buf, __u32 len, __u32 *pos)
{
	for (__u32 i = 0; i < PPBPF_V1_MAX_LEN; i++) {
		__u32 p = *pos + i;

		if (p + 1 >= len)
			return PPBPF_E_INCOMPLETE;
		if (PPBPF_AT(buf, p) == '\r' && PPBPF_AT(buf, p + 1) == '\n') {
			*pos = p + 2;
			return 0;
		}
	}
	return PPBPF_E_INCOMPLETE;
}

/* A v1 line; buf[0] is 'P'. */
PPBPF_SUBPROG int ppbpf_parse_v1(const ppbpf_buf_t *buf, __u32 len, __u32 max, struct ppbpf_hdr *h)
{
	__u32 cap = max < PPBPF_V1_MAX_LEN ? max : PPBPF_V1_MAX_LEN;
	__u32 vlen = len < cap ? len : cap; /* bytes the line may occupy */
	__u32 pos = 0, min = PPBPF_MIN_LEN;
	int rc;

	PPBPF_ARGS_NONNULL(buf && h, PPBPF_E_NOT_PROXY);
	rc = ppbpf_v1_lit(buf, vlen, &pos, "PROXY", 5, PPBPF_E_NOT_PROXY);
	if (!rc)
		rc = ppbpf_v1_sep(buf, vlen, &pos, ' ', PPBPF_E_V1_SYNTAX);
	if (!rc) {
		if (pos < vlen && PPBPF_AT(buf, pos) == 'T') {
			rc = ppbpf_v1_lit(buf, vlen, &pos, "TCP", 3, PPBPF_E_V1_PROTO);
			if (!rc && pos >= vlen)
				rc = PPBPF_E_INCOMPLETE;
			if (!rc) {
				__u8 c = PPBPF_AT(buf, pos);

				if (c == '4') {
					h->family = PPBPF_FAM_TCP4;
					min = PPBPF_V1_MIN_TCP4;
				} else if (c == '6') {
					h->family = PPBPF_FAM_TCP6;
					min = PPBPF_V1_MIN_TCP6;
				} else {
					rc = PPBPF_E_V1_PROTO;
				}
				pos++;
			}
			if (!rc)
				rc = ppbpf_v1_sep(buf, vlen, &pos, ' ', PPBPF_E_V1_PROTO);
			if (!rc)
				rc = ppbpf_v1_tcp(buf, vlen, &pos, h->family == PPBPF_FAM_TCP6, h);
		} else {
			rc = ppbpf_v1_lit(buf, vlen, &pos, "UNKNOWN", 7, PPBPF_E_V1_PROTO);
			h->family = PPBPF_FAM_UNKNOWN;
			if (!rc && pos >= vlen)
				rc = PPBPF_E_INCOMPLETE;
			if (!rc && PPBPF_AT(buf, pos) != ' ' && PPBPF_AT(buf, pos) != '\r')
				rc = PPBPF_E_V1_PROTO;
			if (!rc)
				rc = ppbpf_v1_unknown(buf, vlen, &pos);
		}
	}
	if (rc == PPBPF_E_INCOMPLETE) {
		if (len >= cap) /* the line could only go on past its limit */
			return cap < PPBPF_V1_MAX_LEN ? PPBPF_E_TOO_LARGE : PPBPF_E_V1_TOO_LONG;
		h->need = len < min ? min - len : 1;
		return rc;
	}
	if (rc)
		return rc;
	h->version = 1;
	h->command = PPBPF_CMD_PROXY;
	h->header_len = pos;
	return (int)pos;
}

/* ---- v2 TLVs --------------------------------------------------------------- */

/* State of the TLV walk: the top-level list, and one level of SSL sub-TLVs. */
struct ppbpf_tlv_walk {
	const ppbpf_buf_t *buf;
	__u32 pos;       /* next TLV */
	__u32 end;       /* end of the list being walked */
	__u32 outer_end; /* end of the top-level list while inside an SSL TLV */
	__u32 crc_off;   /* offset of the CRC32C value; 0 if none (it is never at 0) */
	__s32 err;       /* first error found */
	__u32 in_ssl;    /* walking SSL sub-TLVs */
	__u32 count;     /* top-level TLVs seen */
};

/* One TLV (or the return from an SSL value). Non-zero ends the walk. */
PPBPF_CALLBACK long ppbpf_tlv_step(__u64 idx, void *ctx)
{
	struct ppbpf_tlv_walk *w = ctx;
	__u32 type, vlen, v;
	(void)idx;

	if (w->pos >= w->end) {
		if (!w->in_ssl)
			return 1;
		w->in_ssl = 0;
		w->end = w->outer_end;
		return 0;
	}
	if (w->end - w->pos < PPBPF_TLV_HDR_LEN) {
		w->err = w->in_ssl ? PPBPF_E_SSL : PPBPF_E_TLV_TRUNCATED;
		return 1;
	}
	type = PPBPF_AT(w->buf, w->pos);
	vlen = ppbpf_be16(w->buf, w->pos + 1);
	v = w->pos + PPBPF_TLV_HDR_LEN;
	if (vlen > w->end - v) {
		w->err = w->in_ssl ? PPBPF_E_SSL : PPBPF_E_TLV_TRUNCATED;
		return 1;
	}
	w->pos = v + vlen;
	if (w->in_ssl) /* sub-TLVs carry strings; nothing more to check */
		return 0;
	w->count++;
	switch (type) {
	case PPBPF_TLV_CRC32C:
		if (vlen != 4)
			w->err = PPBPF_E_CRC32C_LEN;
		else if (w->crc_off)
			w->err = PPBPF_E_CRC32C_DUP;
		else
			w->crc_off = v;
		break;
	case PPBPF_TLV_UNIQUE_ID:
		if (vlen > PPBPF_UNIQUE_ID_MAX)
			w->err = PPBPF_E_UNIQUE_ID_LEN;
		break;
	case PPBPF_TLV_SSL:
		if (vlen < PPBPF_SSL_HEAD_LEN) {
			w->err = PPBPF_E_SSL;
			break;
		}
		w->outer_end = w->end;
		w->end = w->pos;
		w->pos = v + PPBPF_SSL_HEAD_LEN;
		w->in_ssl = 1;
		break;
	}
	return w->err != 0;
}

/* Steps that walk n TLV bytes: each TLV takes >= 3 bytes, each SSL one more step. */
#define PPBPF_TLV_STEPS(n) (2 * ((n) / PPBPF_TLV_HDR_LEN) + 2)

/* State of the CRC32C check over a whole header, the CRC value read as zeros. */
struct ppbpf_crc_walk {
	const ppbpf_buf_t *buf;
	__u32 end;     /* header length */
	__u32 crc_off; /* the 4 bytes read as zero */
	__u32 crc;     /* running, inverted */
};

/* Bytes covered by one ppbpf_crc_step(). */
#define PPBPF_CRC_CHUNK 16

/*
 * Chunk idx of the header into the CRC. Non-zero at the end. The position
 * comes from idx, not from the walk state: the verifier then sees one
 * unknown index instead of a new exact one for every chunk.
 */
PPBPF_CALLBACK long ppbpf_crc_step(__u64 idx, void *ctx)
{
	struct ppbpf_crc_walk *w = ctx;
	__u32 base = (__u32)idx * PPBPF_CRC_CHUNK;

	for (__u32 k = 0; k < PPBPF_CRC_CHUNK; k++) {
		__u32 i = base + k;
		__u8 b;

		if (i >= w->end)
			return 1;
		b = i - w->crc_off < 4 ? 0 : PPBPF_AT(w->buf, i);
		w->crc = ppbpf_crc32c_byte(w->crc, b);
	}
	return 0;
}

/* CRC32C of buf[0, len) with the 4 bytes at crc_off taken as zero. */
PPBPF_INLINE __u32 ppbpf_crc32c_header(const ppbpf_buf_t *buf, __u32 len, __u32 crc_off)
{
#ifdef __bpf__
	struct ppbpf_crc_walk w = { .buf = buf, .end = len, .crc_off = crc_off, .crc = ~0u };

	PPBPF_LOOP(len / PPBPF_CRC_CHUNK + 1, ppbpf_crc_step, &w);
	return ~w.crc;
#else
	static const __u8 zeros[4];
	__u32 crc = ppbpf_crc32c_update(~0u, buf, crc_off);

	crc = ppbpf_crc32c_update(crc, zeros, 4);
	crc = ppbpf_crc32c_update(crc, buf + crc_off + 4, len - crc_off - 4);
	return ~crc;
#endif
}

/*
 * Walk buf[start, end) as TLVs; verify CRC32C over buf[0, end) if present.
 * Returns 0 or a status; *count gets the number of top-level TLVs.
 */
PPBPF_SUBPROG int ppbpf_v2_tlvs(const ppbpf_buf_t *buf, __u32 start, __u32 end, __u32 *count)
{
	__u32 zero = PPBPF_OPAQUE_ZERO; /* the walk's changing state starts unknown to the verifier */
	struct ppbpf_tlv_walk w = {
		.buf = buf, .pos = start, .end = end,
		.outer_end = zero, .crc_off = zero, .err = (__s32)zero, .in_ssl = zero, .count = zero,
	};

	PPBPF_ARGS_NONNULL(buf && count, PPBPF_E_TLV_TRUNCATED);
	*count = 0;
	if (start >= end)
		return 0;
	PPBPF_LOOP(PPBPF_TLV_STEPS(end - start), ppbpf_tlv_step, &w);
	*count = w.count;
	if (w.err)
		return w.err;
	if (w.crc_off && ppbpf_crc32c_header(buf, end, w.crc_off) != ppbpf_be32(buf, w.crc_off))
		return PPBPF_E_CRC32C;
	return 0;
}

/* ---- v2 header ------------------------------------------------------------- */

/* Address block size for a family nibble, 0 for AF_UNSPEC. */
PPBPF_INLINE __u32 ppbpf_v2_block(__u32 fam)
{
	return fam == 1 ? PPBPF_V2_ADDR_INET : fam == 2 ? PPBPF_V2_ADDR_INET6 : fam == 3 ? PPBPF_V2_ADDR_UNIX : 0;
}

/* Family, addresses and ports of a PROXY header with a family/transport we use. */
PPBPF_INLINE void ppbpf_v2_addrs(const ppbpf_buf_t *buf, __u32 fam, __u32 tr, struct ppbpf_hdr *h)
{
	const __u32 a = PPBPF_V2_FIXED_LEN;
	__u32 n = fam == 1 ? 4 : 16;

	if (fam == 3) {
		h->family = tr == 1 ? PPBPF_FAM_UNIX_STREAM : PPBPF_FAM_UNIX_DGRAM;
		return;
	}
	if (fam == 1)
		h->family = tr == 1 ? PPBPF_FAM_TCP4 : PPBPF_FAM_UDP4;
	else
		h->family = tr == 1 ? PPBPF_FAM_TCP6 : PPBPF_FAM_UDP6;
	if (fam == 1) { /* fixed sizes, so each copy is a plain load and store */
		__builtin_memcpy(h->src_addr, PPBPF_PTR(buf, a), 4);
		__builtin_memcpy(h->dst_addr, PPBPF_PTR(buf, a + 4), 4);
	} else {
		__builtin_memcpy(h->src_addr, PPBPF_PTR(buf, a), 16);
		__builtin_memcpy(h->dst_addr, PPBPF_PTR(buf, a + 16), 16);
	}
	h->src_port = (__u16)ppbpf_be16(buf, a + 2 * n);
	h->dst_port = (__u16)ppbpf_be16(buf, a + 2 * n + 2);
}

/* A v2 header; buf[0] is 0x0D. */
PPBPF_SUBPROG int ppbpf_parse_v2(const ppbpf_buf_t *buf, __u32 len, __u32 max, struct ppbpf_hdr *h)
{
	__u32 vc, fb, fam, tr, alen, total, block, tlv_start;
	int known, rc;

	PPBPF_ARGS_NONNULL(buf && h, PPBPF_E_NOT_PROXY);

	if (len < PPBPF_V2_FIXED_LEN) {
		h->need = PPBPF_V2_FIXED_LEN - len;
		if (!ppbpf_v2_sig_prefix(buf, len))
			return PPBPF_E_NOT_PROXY;
		if (len > 12 && (PPBPF_AT(buf, 12) >> 4) != 2)
			return PPBPF_E_V2_VERSION;
		if (len > 12 && (PPBPF_AT(buf, 12) & 0xF) > PPBPF_CMD_PROXY)
			return PPBPF_E_V2_COMMAND;
		if (len > 13 && ((PPBPF_AT(buf, 13) >> 4) > 3 || (PPBPF_AT(buf, 13) & 0xF) > 2))
			return PPBPF_E_V2_FAMILY;
		if (len >= max) /* no v2 header is shorter than its fixed part: it cannot fit */
			return PPBPF_E_TOO_LARGE;
		return PPBPF_E_INCOMPLETE;
	}
	if (!ppbpf_v2_sig(buf))
		return PPBPF_E_NOT_PROXY;
	vc = PPBPF_AT(buf, 12);
	fb = PPBPF_AT(buf, 13);
	fam = fb >> 4;
	tr = fb & 0xF;
	if (vc >> 4 != 2)
		return PPBPF_E_V2_VERSION;
	if ((vc & 0xF) > PPBPF_CMD_PROXY)
		return PPBPF_E_V2_COMMAND;
	if (fam > 3 || tr > 2)
		return PPBPF_E_V2_FAMILY;
	alen = ppbpf_be16(buf, 14);
	total = PPBPF_V2_FIXED_LEN + alen;
	if (total > max)
		return PPBPF_E_TOO_LARGE;
	/* One of the six listed family/transport pairs; other valid pairs fall back to UNSPEC. */
	known = fam && tr;
	block = ppbpf_v2_block(fam);
	if ((vc & 0xF) == PPBPF_CMD_PROXY && known && alen < block)
		return PPBPF_E_V2_ADDR_LEN;
	if (len < total) {
		h->need = total - len;
		return PPBPF_E_INCOMPLETE;
	}
	/*
	 * TLVs follow the address block. LOCAL ignores the block but its TLVs
	 * still count; a fallback pair or a LOCAL too short for its block has
	 * no TLVs we could locate, so the whole length is skipped.
	 */
	if (fb == 0)
		tlv_start = PPBPF_V2_FIXED_LEN;
	else if (known && alen >= block)
		tlv_start = PPBPF_V2_FIXED_LEN + block;
	else
		tlv_start = total;
	rc = ppbpf_v2_tlvs(buf, tlv_start, total, &h->tlv_count);
	if (rc)
		return rc;
	h->version = 2;
	h->command = (__u8)(vc & 0xF);
	h->fam_byte = (__u8)fb;
	h->addr_off = PPBPF_V2_FIXED_LEN;
	h->tlv_off = tlv_start;
	h->tlv_len = total - tlv_start;
	h->header_len = total;
	if (h->command == PPBPF_CMD_PROXY && known)
		ppbpf_v2_addrs(buf, fam, tr, h);
	return (int)total;
}

/* ---- entry points ---------------------------------------------------------- */

/*
 * Parse the header at the start of buf[0, len), refusing headers longer than
 * max bytes (PPBPF_E_TOO_LARGE; v1 lines are capped at 107 regardless).
 * See the contract at the top of this file.
 */
PPBPF_INLINE int ppbpf_parse_max(const ppbpf_buf_t *buf, __u32 len, __u32 max, struct ppbpf_hdr *h)
{
	__builtin_memset(h, 0, sizeof(*h));
#ifdef __bpf__
	if (max > PPBPF_BPF_BUF_SIZE)
		max = PPBPF_BPF_BUF_SIZE;
	if (len > PPBPF_BPF_BUF_SIZE)
		len = PPBPF_BPF_BUF_SIZE;
#endif
	if (len == 0) {
		h->need = PPBPF_MIN_LEN;
		return PPBPF_E_INCOMPLETE;
	}
	if (PPBPF_AT(buf, 0) == 'P')
		return ppbpf_parse_v1(buf, len, max, h);
	if (PPBPF_AT(buf, 0) == 0x0D)
		return ppbpf_parse_v2(buf, len, max, h);
	return PPBPF_E_NOT_PROXY;
}

/* Parse with no limit but the protocol's own. */
PPBPF_INLINE int ppbpf_parse(const ppbpf_buf_t *buf, __u32 len, struct ppbpf_hdr *h)
{
	return ppbpf_parse_max(buf, len, PPBPF_V2_MAX_LEN, h);
}

#endif /* PPBPF_PARSE_H */
