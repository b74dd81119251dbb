/* SPDX-License-Identifier: MIT */
/*
 * libppbpf: the PROXY protocol in userspace.
 *
 * Parsing itself is header-only (ppbpf/parse.h, the same code the BPF
 * programs run): call ppbpf_parse(). This library adds what only userspace
 * needs: error texts, a builder, TLV iteration and decoding, and address
 * formatting.
 *
 * Functions return a negative errno on failure unless stated otherwise.
 */
#ifndef PPBPF_H
#define PPBPF_H

#include <stddef.h>
#include <ppbpf/parse.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PPBPF_API __attribute__((visibility("default")))

/* ---- status codes --------------------------------------------------------- */

/* A sentence describing a ppbpf_parse() status (any int is accepted). */
PPBPF_API const char *ppbpf_strerror(int status);
/* The stable short name of a status ("v1_bad_port"), as the CLI prints it; NULL if unknown. */
PPBPF_API const char *ppbpf_errname(int status);

/* ---- families and addresses ------------------------------------------------- */

/* Longest text ppbpf_format_ip() writes, NUL included. */
#define PPBPF_ADDRSTRLEN 46

/* "TCP4", "UNIX", "UNSPEC", ... for an enum ppbpf_family; NULL if out of range. */
PPBPF_API const char *ppbpf_family_name(int family);
/* AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC for an enum ppbpf_family. */
PPBPF_API int ppbpf_family_af(int family);

/*
 * Canonical text of an AF_INET or AF_INET6 address (RFC 5952 for IPv6:
 * lower case, longest zero run of two or more groups as "::", v4-mapped as
 * ::ffff:a.b.c.d). Returns the text length, -EAFNOSUPPORT or -ENOSPC.
 */
PPBPF_API int ppbpf_format_ip(int af, const void *addr, char *out, size_t cap);
/*
 * Strict text to address, with the rules of a v1 header: dotted quad without
 * leading zeros, or RFC 4291 IPv6. Writes 4 or 16 bytes. Returns 0 or -EINVAL.
 */
PPBPF_API int ppbpf_parse_ip(int af, const char *text, void *out);

/* ---- TLVs ------------------------------------------------------------------- */

/* One TLV; value points into the parsed buffer. */
struct ppbpf_tlv {
	__u8 type;
	__u16 len;
	const __u8 *value;
};

/* A cursor over a list of TLVs (top level, or the sub-TLVs of an SSL TLV). */
struct ppbpf_tlv_iter {
	const __u8 *pos;
	const __u8 *end;
};

/* Iterate the TLVs of a header that ppbpf_parse() accepted from buf. */
PPBPF_API void ppbpf_tlv_iter_init(struct ppbpf_tlv_iter *it, const void *buf, const struct ppbpf_hdr *h);
/* Iterate the sub-TLVs of an SSL TLV. Returns 0, or -EINVAL if t is no valid SSL TLV. */
PPBPF_API int ppbpf_ssl_iter_init(struct ppbpf_tlv_iter *it, const struct ppbpf_tlv *t);
/* Next TLV: 1 with *out set, 0 at the end, -EBADMSG if the list is malformed. */
PPBPF_API int ppbpf_tlv_next(struct ppbpf_tlv_iter *it, struct ppbpf_tlv *out);
/* First TLV of a type: 1 with *out set, 0 if absent. */
PPBPF_API int ppbpf_tlv_find(const void *buf, const struct ppbpf_hdr *h, __u8 type, struct ppbpf_tlv *out);
/* First SSL sub-TLV of a type: 1 with *out set, 0 if absent, -EINVAL if ssl is no SSL TLV. */
PPBPF_API int ppbpf_ssl_find(const struct ppbpf_tlv *ssl, __u8 subtype, struct ppbpf_tlv *out);
/* The client bit field and verify result of an SSL TLV. 0 or -EINVAL. */
PPBPF_API int ppbpf_ssl_head(const struct ppbpf_tlv *ssl, __u8 *client, __u32 *verify);

/* "ALPN", "SSL", "AWS", ... for a TLV type; NULL if unregistered. */
PPBPF_API const char *ppbpf_tlv_name(__u8 type);
/* "VERSION", "CN", ... for an SSL sub-TLV type; NULL if unregistered. */
PPBPF_API const char *ppbpf_ssl_sub_name(__u8 type);

/*
 * AWS VPC endpoint id (type 0xEA, subtype 0x01) as a NUL-terminated string.
 * Returns its length, -ENOENT if t is not one, -ENOSPC if cap is too small.
 */
PPBPF_API int ppbpf_aws_vpce_id(const struct ppbpf_tlv *t, char *out, size_t cap);
/* Azure private endpoint link id (type 0xEE, subtype 0x01). 0 or -ENOENT. */
PPBPF_API int ppbpf_azure_link_id(const struct ppbpf_tlv *t, __u32 *out);
/* GCP Private Service Connect connection id (type 0xE0, 8 bytes). 0 or -ENOENT. */
PPBPF_API int ppbpf_gcp_psc_id(const struct ppbpf_tlv *t, __u64 *out);

/* ---- building ----------------------------------------------------------------- */

/* Append a CRC32C TLV and fill it in (v2). */
#define PPBPF_BUILD_CRC32C 0x1

/* What ppbpf_build() writes. Zero-initialise, then set what applies. */
struct ppbpf_build {
	__u8 version; /* 1 or 2 */
	__u8 command; /* PPBPF_CMD_PROXY, or PPBPF_CMD_LOCAL (v2 only) */
	__u8 family;  /* enum ppbpf_family; v1 takes TCP4, TCP6, UNKNOWN */
	__u16 src_port, dst_port;   /* host order */
	__u8 src_addr[16], dst_addr[16]; /* network order; IPv4 in the first 4 bytes */
	__u8 src_path[PPBPF_UNIX_PATH_LEN], dst_path[PPBPF_UNIX_PATH_LEN]; /* UNIX, as on the wire */
	const struct ppbpf_tlv *tlvs; /* v2: written in this order */
	unsigned int n_tlvs;
	unsigned int flags; /* PPBPF_BUILD_* */
};

/*
 * Write the header b describes to out. Returns its length, -EINVAL for an
 * impossible combination, -EMSGSIZE past 65535 bytes of v2 payload, or
 * -ENOSPC if cap is too small.
 */
PPBPF_API int ppbpf_build(const struct ppbpf_build *b, void *out, size_t cap);

/*
 * Write the value of an SSL TLV: client bits, verify result, then sub-TLVs.
 * Returns its length, -EMSGSIZE or -ENOSPC.
 */
PPBPF_API int ppbpf_build_ssl(__u8 client, __u32 verify, const struct ppbpf_tlv *subs, unsigned int n,
			      void *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* PPBPF_H */
