// SPDX-License-Identifier: MIT
/* Building v1 and v2 headers. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <ppbpf/ppbpf.h>

/* A cursor that writes into a bounded buffer and remembers overflow. */
struct out {
	__u8 *p;
	size_t cap;
	size_t len;
};

static void put(struct out *o, const void *src, size_t n)
{
	if (n && o->len + n <= o->cap) /* n == 0 may come with src == NULL: an empty TLV */
		memcpy(o->p + o->len, src, n);
	o->len += n;
}

static void put_u8(struct out *o, __u8 v)
{
	put(o, &v, 1);
}

static void put_be16(struct out *o, __u16 v)
{
	__u8 b[2] = { (__u8)(v >> 8), (__u8)v };

	put(o, b, 2);
}

static void put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_text_ip(struct out *o, int af, const __u8 *addr)
{
	char txt[PPBPF_ADDRSTRLEN];

	ppbpf_format_ip(af, addr, txt, sizeof(txt));
	put_str(o, txt);
}

static void put_dec(struct out *o, unsigned int v)
{
	char txt[12];
	int n = 0;

	do
		txt[sizeof(txt) - ++n] = (char)('0' + v % 10);
	while ((v /= 10));
	put(o, txt + sizeof(txt) - n, (size_t)n);
}

static int build_v1(const struct ppbpf_build *b, struct out *o)
{
	int af;

	if (b->command != PPBPF_CMD_PROXY || b->n_tlvs || b->flags)
		return -EINVAL;
	if (b->family == PPBPF_FAM_UNKNOWN) {
		put_str(o, "PROXY UNKNOWN\r\n");
		return 0;
	}
	if (b->family != PPBPF_FAM_TCP4 && b->family != PPBPF_FAM_TCP6)
		return -EINVAL;
	af = b->family == PPBPF_FAM_TCP4 ? AF_INET : AF_INET6;
	put_str(o, b->family == PPBPF_FAM_TCP4 ? "PROXY TCP4 " : "PROXY TCP6 ");
	put_text_ip(o, af, b->src_addr);
	put_u8(o, ' ');
	put_text_ip(o, af, b->dst_addr);
	put_u8(o, ' ');
	put_dec(o, b->src_port);
	put_u8(o, ' ');
	put_dec(o, b->dst_port);
	put_str(o, "\r\n");
	return 0;
}

/* The v2 family/transport byte of a family; -EINVAL for v1-only UNKNOWN. */
static int v2_fam_byte(int family)
{
	static const int bytes[] = {
		[PPBPF_FAM_UNSPEC] = 0x00,      [PPBPF_FAM_TCP4] = 0x11,       [PPBPF_FAM_UDP4] = 0x12,
		[PPBPF_FAM_TCP6] = 0x21,        [PPBPF_FAM_UDP6] = 0x22,       [PPBPF_FAM_UNIX_STREAM] = 0x31,
		[PPBPF_FAM_UNIX_DGRAM] = 0x32,  [PPBPF_FAM_UNKNOWN] = -EINVAL,
	};

	if (family < 0 || family > PPBPF_FAM_UNKNOWN)
		return -EINVAL;
	return bytes[family];
}

static void put_v2_addrs(const struct ppbpf_build *b, struct out *o)
{
	switch (b->family) {
	case PPBPF_FAM_TCP4:
	case PPBPF_FAM_UDP4:
		put(o, b->src_addr, 4);
		put(o, b->dst_addr, 4);
		break;
	case PPBPF_FAM_TCP6:
	case PPBPF_FAM_UDP6:
		put(o, b->src_addr, 16);
		put(o, b->dst_addr, 16);
		break;
	case PPBPF_FAM_UNIX_STREAM:
	case PPBPF_FAM_UNIX_DGRAM:
		put(o, b->src_path, PPBPF_UNIX_PATH_LEN);
		put(o, b->dst_path, PPBPF_UNIX_PATH_LEN);
		return;
	default:
		return;
	}
	put_be16(o, b->src_port);
	put_be16(o, b->dst_port);
}

static int build_v2(const struct ppbpf_build *b, struct out *o)
{
	int fam = v2_fam_byte(b->family);
	size_t payload;

	if (fam < 0 || b->command > PPBPF_CMD_PROXY)
		return -EINVAL;
	put(o, PPBPF_V2_SIG, PPBPF_V2_SIG_LEN);
	put_u8(o, (__u8)(0x20 | b->command));
	put_u8(o, (__u8)fam);
	put_be16(o, 0); /* length, filled in below */
	put_v2_addrs(b, o);
	for (unsigned int i = 0; i < b->n_tlvs; i++) {
		put_u8(o, b->tlvs[i].type);
		put_be16(o, b->tlvs[i].len);
		put(o, b->tlvs[i].value, b->tlvs[i].len);
	}
	if (b->flags & PPBPF_BUILD_CRC32C) {
		static const __u8 crc_tlv[7] = { PPBPF_TLV_CRC32C, 0, 4 };

		put(o, crc_tlv, sizeof(crc_tlv));
	}
	payload = o->len - PPBPF_V2_FIXED_LEN;
	if (payload > 65535)
		return -EMSGSIZE;
	if (o->len > o->cap)
		return 0; /* the caller reports -ENOSPC */
	o->p[14] = (__u8)(payload >> 8);
	o->p[15] = (__u8)payload;
	if (b->flags & PPBPF_BUILD_CRC32C) {
		__u32 crc = ppbpf_crc32c(o->p, (__u32)o->len);
		__u8 *v = o->p + o->len - 4;

		v[0] = (__u8)(crc >> 24);
		v[1] = (__u8)(crc >> 16);
		v[2] = (__u8)(crc >> 8);
		v[3] = (__u8)crc;
	}
	return 0;
}

int ppbpf_build(const struct ppbpf_build *b, void *out, size_t cap)
{
	struct out o = { .p = out, .cap = cap };
	int rc;

	if (b->version == 1)
		rc = build_v1(b, &o);
	else if (b->version == 2)
		rc = build_v2(b, &o);
	else
		rc = -EINVAL;
	if (rc)
		return rc;
	if (o.len > cap)
		return -ENOSPC;
	return (int)o.len;
}

int ppbpf_build_ssl(__u8 client, __u32 verify, const struct ppbpf_tlv *subs, unsigned int n, void *out,
		    size_t cap)
{
	struct out o = { .p = out, .cap = cap };

	put_u8(&o, client);
	put_be16(&o, (__u16)(verify >> 16));
	put_be16(&o, (__u16)verify);
	for (unsigned int i = 0; i < n; i++) {
		put_u8(&o, subs[i].type);
		put_be16(&o, subs[i].len);
		put(&o, subs[i].value, subs[i].len);
	}
	if (o.len > 65535)
		return -EMSGSIZE;
	if (o.len > cap)
		return -ENOSPC;
	return (int)o.len;
}
