/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Addresses as every map keeps them (IPv4 in the first 4 of 16 bytes), and socket lookup tuples. */
#ifndef PPBPF_LIB_ADDR_H
#define PPBPF_LIB_ADDR_H

#include <ppbpf/abi.h>
#include "consts.h"

/* ::ffff:a.b.c.d, an IPv4 peer of a dual-stack socket. */
static __always_inline int is_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/*
 * An address as every map keeps it: IPv4 (also an IPv4 peer of a dual-stack
 * socket, v4-mapped) in the first 4 bytes, else 16 bytes. out must be zeroed.
 * Returns 1 for IPv4.
 */
static __always_inline int norm_addr(__u32 family, __u32 ip4, const __u32 *ip6, __u8 *out)
{
	if (family == AF_INET) {
		__builtin_memcpy(out, &ip4, 4);
		return 1;
	}
	if (is_v4_mapped(ip6)) {
		__builtin_memcpy(out, &ip6[3], 4);
		return 1;
	}
	__builtin_memcpy(out, ip6, 16);
	return 0;
}

/*
 * A tuple for bpf_skc_lookup_tcp(): a packet from src to dst. Returns its
 * size.
 */
static __always_inline __u32 sock_tuple(struct bpf_sock_tuple *t, int v4, const struct ppbpf_endpoint *src,
					const struct ppbpf_endpoint *dst)
{
	if (v4) {
		__builtin_memcpy(&t->ipv4.saddr, src->addr, 4);
		__builtin_memcpy(&t->ipv4.daddr, dst->addr, 4);
		t->ipv4.sport = bpf_htons(src->port);
		t->ipv4.dport = bpf_htons(dst->port);
		return sizeof(t->ipv4);
	}
	__builtin_memcpy(t->ipv6.saddr, src->addr, 16);
	__builtin_memcpy(t->ipv6.daddr, dst->addr, 16);
	t->ipv6.sport = bpf_htons(src->port);
	t->ipv6.dport = bpf_htons(dst->port);
	return sizeof(t->ipv6);
}

/* A record's original endpoints, from its header (DONE). */
static __always_inline void orig_endpoints(const struct ppbpf_info *i, struct ppbpf_endpoint *src,
					   struct ppbpf_endpoint *dst)
{
	src->port = i->src_port;
	dst->port = i->dst_port;
	__builtin_memcpy(src->addr, i->src_addr, 16);
	__builtin_memcpy(dst->addr, i->dst_addr, 16);
}

/* The socket's own and its peer's address (see norm_addr); both outputs zeroed. Returns 1 for IPv4. */
static __always_inline int sockops_addrs(struct bpf_sock_ops *skops, __u8 *local, __u8 *peer)
{
	__u32 l[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3] };
	__u32 r[4] = { skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2], skops->remote_ip6[3] };

	norm_addr(skops->family, skops->local_ip4, l, local);
	return norm_addr(skops->family, skops->remote_ip4, r, peer);
}

#endif /* PPBPF_LIB_ADDR_H */
