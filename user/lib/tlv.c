// SPDX-License-Identifier: MIT
/* v2 TLVs: iteration, lookup, names, and decoding of SSL and cloud TLVs. */
#include <errno.h>
#include <string.h>
#include <ppbpf/ppbpf.h>

void ppbpf_tlv_iter_init(struct ppbpf_tlv_iter *it, const void *buf, const struct ppbpf_hdr *h)
{
	it->pos = (const __u8 *)buf + h->tlv_off;
	it->end = it->pos + h->tlv_len;
}

int ppbpf_ssl_iter_init(struct ppbpf_tlv_iter *it, const struct ppbpf_tlv *t)
{
	if (t->type != PPBPF_TLV_SSL || t->len < PPBPF_SSL_HEAD_LEN)
		return -EINVAL;
	it->pos = t->value + PPBPF_SSL_HEAD_LEN;
	it->end = t->value + t->len;
	return 0;
}

int ppbpf_tlv_next(struct ppbpf_tlv_iter *it, struct ppbpf_tlv *out)
{
	size_t left = (size_t)(it->end - it->pos);
	__u16 len;

	if (!left)
		return 0;
	if (left < PPBPF_TLV_HDR_LEN)
		return -EBADMSG;
	len = (__u16)(it->pos[1] << 8 | it->pos[2]);
	if (len > left - PPBPF_TLV_HDR_LEN)
		return -EBADMSG;
	out->type = it->pos[0];
	out->len = len;
	out->value = it->pos + PPBPF_TLV_HDR_LEN;
	it->pos = out->value + len;
	return 1;
}

/* First TLV of a type in an iterator's list. */
static int find_in(struct ppbpf_tlv_iter *it, __u8 type, struct ppbpf_tlv *out)
{
	struct ppbpf_tlv t;
	int rc;

	while ((rc = ppbpf_tlv_next(it, &t)) > 0) {
		if (t.type == type) {
			*out = t;
			return 1;
		}
	}
	return rc;
}

int ppbpf_tlv_find(const void *buf, const struct ppbpf_hdr *h, __u8 type, struct ppbpf_tlv *out)
{
	struct ppbpf_tlv_iter it;

	ppbpf_tlv_iter_init(&it, buf, h);
	return find_in(&it, type, out);
}

int ppbpf_ssl_find(const struct ppbpf_tlv *ssl, __u8 subtype, struct ppbpf_tlv *out)
{
	struct ppbpf_tlv_iter it;
	int rc = ppbpf_ssl_iter_init(&it, ssl);

	return rc ? rc : find_in(&it, subtype, out);
}

int ppbpf_ssl_head(const struct ppbpf_tlv *ssl, __u8 *client, __u32 *verify)
{
	const __u8 *v = ssl->value;

	if (ssl->type != PPBPF_TLV_SSL || ssl->len < PPBPF_SSL_HEAD_LEN)
		return -EINVAL;
	*client = v[0];
	*verify = (__u32)v[1] << 24 | (__u32)v[2] << 16 | (__u32)v[3] << 8 | v[4];
	return 0;
}

const char *ppbpf_tlv_name(__u8 type)
{
	switch (type) {
	case PPBPF_TLV_ALPN: return "ALPN";
	case PPBPF_TLV_AUTHORITY: return "AUTHORITY";
	case PPBPF_TLV_CRC32C: return "CRC32C";
	case PPBPF_TLV_NOOP: return "NOOP";
	case PPBPF_TLV_UNIQUE_ID: return "UNIQUE_ID";
	case PPBPF_TLV_SSL: return "SSL";
	case PPBPF_TLV_NETNS: return "NETNS";
	case PPBPF_TLV_GCP: return "GCP";
	case PPBPF_TLV_AWS: return "AWS";
	case PPBPF_TLV_AZURE: return "AZURE";
	default: return NULL;
	}
}

const char *ppbpf_ssl_sub_name(__u8 type)
{
	switch (type) {
	case PPBPF_SSL_VERSION: return "VERSION";
	case PPBPF_SSL_CN: return "CN";
	case PPBPF_SSL_CIPHER: return "CIPHER";
	case PPBPF_SSL_SIG_ALG: return "SIG_ALG";
	case PPBPF_SSL_KEY_ALG: return "KEY_ALG";
	case PPBPF_SSL_GROUP: return "GROUP";
	case PPBPF_SSL_SIG_SCHEME: return "SIG_SCHEME";
	case PPBPF_SSL_CLIENT_CERT: return "CLIENT_CERT";
	default: return NULL;
	}
}

int ppbpf_aws_vpce_id(const struct ppbpf_tlv *t, char *out, size_t cap)
{
	size_t n;

	if (t->type != PPBPF_TLV_AWS || t->len < 1 || t->value[0] != PPBPF_AWS_VPCE_ID)
		return -ENOENT;
	n = t->len - 1u;
	if (n + 1 > cap)
		return -ENOSPC;
	memcpy(out, t->value + 1, n);
	out[n] = '\0';
	return (int)n;
}

int ppbpf_azure_link_id(const struct ppbpf_tlv *t, __u32 *out)
{
	const __u8 *v = t->value;

	if (t->type != PPBPF_TLV_AZURE || t->len != 5 || v[0] != PPBPF_AZURE_LINKID)
		return -ENOENT;
	*out = (__u32)v[1] | (__u32)v[2] << 8 | (__u32)v[3] << 16 | (__u32)v[4] << 24;
	return 0;
}

int ppbpf_gcp_psc_id(const struct ppbpf_tlv *t, __u64 *out)
{
	__u64 id = 0;

	if (t->type != PPBPF_TLV_GCP || t->len != 8)
		return -ENOENT;
	for (int i = 0; i < 8; i++)
		id = id << 8 | t->value[i];
	*out = id;
	return 0;
}
