/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Reading a TCP segment: its IPv4/IPv6 and TCP headers (the payload's place,
 * the endpoints), then copying its payload into a buffer or comparing it with
 * bytes kept. cgroup_skb sees the IP header at offset 0; tc sees the
 * Ethernet header first (l3 = ETH_HLEN).
 */
#ifndef PPBPF_LIB_SEGMENT_H
#define PPBPF_LIB_SEGMENT_H

#include "addr.h"
#include "consts.h"

/* Where a TCP segment's payload is, and who sent it. */
struct segment {
	__u32 seq;         /* sequence number of the first payload byte */
	__u32 ack;         /* what it acknowledges */
	__u32 off;         /* payload offset in the skb */
	__u32 len;         /* payload bytes */
	__u32 ip_len;      /* bytes of the IP header and its extension headers */
	__u32 tcp_off;     /* offset of the TCP header in the skb */
	__u32 raw_seq;     /* the sequence number field as sent */
	struct ppbpf_endpoint peer;
	struct ppbpf_endpoint local;
	__u8 v4;           /* the addresses are IPv4 */
	__u8 rst;          /* the RST flag */
	__u8 syn, fin, has_ack; /* the SYN, FIN and ACK flags */
	__u8 doff;         /* TCP header length, in 32-bit words */
};

/* The TCP header at l3 + ip_len: ports, sequence numbers, flags, the payload's place. */
static __always_inline void take_tcp(struct __sk_buff *skb, const struct tcphdr *th, __u32 l3, __u32 ip_len,
				     struct segment *s)
{
	s->ip_len = ip_len;
	s->tcp_off = l3 + ip_len;
	s->off = s->tcp_off + th->doff * 4;
	s->len = skb->len > s->off ? skb->len - s->off : 0;
	s->raw_seq = bpf_ntohl(th->seq);
	s->seq = s->raw_seq + th->syn; /* a SYN (fast open) takes one sequence number */
	s->syn = th->syn;
	s->fin = th->fin;
	s->has_ack = th->ack;
	s->doff = th->doff;
	s->ack = bpf_ntohl(th->ack_seq);
	s->rst = th->rst;
	s->peer.port = bpf_ntohs(th->source);
	s->local.port = bpf_ntohs(th->dest);
}

/* The common case, read in place: IPv4 or IPv6 and TCP right after, in the skb's linear part. */
static __always_inline int read_segment_direct(struct __sk_buff *skb, struct segment *s, __u32 l3)
{
	void *data = (void *)(long)skb->data + l3, *end = (void *)(long)skb->data_end;
	struct tcphdr *th;
	__u32 ip_len;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
			return -1;
		ip_len = ip->ihl * 4;
		if (ip_len < sizeof(*ip))
			return -1;
		s->v4 = norm_addr(AF_INET, ip->saddr, NULL, s->peer.addr);
		norm_addr(AF_INET, ip->daddr, NULL, s->local.addr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		ip_len = sizeof(*ip6);
		s->v4 = norm_addr(AF_INET6, 0, (const __u32 *)&ip6->saddr, s->peer.addr);
		norm_addr(AF_INET6, 0, (const __u32 *)&ip6->daddr, s->local.addr);
	} else {
		return -1;
	}
	th = data + (ip_len & 63); /* the mask: a bound for the verifier, ihl is 4 bits */
	if ((void *)(th + 1) > end)
		return -1;
	take_tcp(skb, th, l3, ip_len, s);
	return 0;
}

/*
 * Where TCP starts behind an IPv6 header whose next header is `next`: its
 * extension headers (hop-by-hop, routing, destination options, AH) are
 * followed, up to IPV6_EXT_MAX. Returns the offset, or 0.
 */
static __always_inline __u32 ipv6_tcp_offset(struct __sk_buff *skb, __u32 l3, __u8 next)
{
	__u32 off = sizeof(struct ipv6hdr);

	for (int i = 0; i < IPV6_EXT_MAX; i++) {
		__u8 eh[2];

		if (next == IPPROTO_TCP)
			return off;
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS && next != IPPROTO_AH)
			return 0;
		if (bpf_skb_load_bytes(skb, l3 + off, eh, sizeof(eh)))
			return 0;
		off += next == IPPROTO_AH ? (eh[1] + 2) * 4 : (eh[1] + 1) * 8;
		next = eh[0];
	}
	return next == IPPROTO_TCP ? off : 0;
}

/* Decode the IPv4/IPv6 and TCP headers of skb, the IP header at l3. Returns 0, or -1 for anything else. */
static __always_inline int read_segment_at(struct __sk_buff *skb, struct segment *s, __u32 l3)
{
	struct tcphdr th;
	__u32 ip_len;

	__builtin_memset(s, 0, sizeof(*s));
	/* Headers almost always sit in the linear part: read them there, without a helper call. */
	if (!read_segment_direct(skb, s, l3))
		return 0;
	__builtin_memset(s, 0, sizeof(*s));
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)) || ip.protocol != IPPROTO_TCP)
			return -1;
		ip_len = ip.ihl * 4;
		s->v4 = norm_addr(AF_INET, ip.saddr, NULL, s->peer.addr);
		norm_addr(AF_INET, ip.daddr, NULL, s->local.addr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)))
			return -1;
		ip_len = ipv6_tcp_offset(skb, l3, ip6.nexthdr);
		if (!ip_len)
			return -1;
		s->v4 = norm_addr(AF_INET6, 0, (const __u32 *)&ip6.saddr, s->peer.addr);
		norm_addr(AF_INET6, 0, (const __u32 *)&ip6.daddr, s->local.addr);
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes(skb, l3 + (ip_len & 0x3ff), &th, sizeof(th))) /* the mask: a bound, and no real header is longer */
		return -1;
	take_tcp(skb, &th, l3, ip_len & 0x3ff, s);
	return 0;
}

/* A segment as cgroup_skb sees it: the IP header first. */
static __always_inline int read_segment(struct __sk_buff *skb, struct segment *s)
{
	return read_segment_at(skb, s, 0);
}

/* Where copy_chunk() is in a copy of payload bytes into a buffer (or compare_byte() in a comparison). */
struct copy_state {
	struct __sk_buff *skb;
	__u8 *dst;  /* PPBPF_MAX_HEADER + PPBPF_COPY_CHUNK bytes: a chunk at a masked offset stays inside */
	__u32 from; /* next payload offset to copy */
	__u32 at;   /* where it goes in dst */
	__u32 left; /* bytes still to copy */
	int err;
};

/*
 * One bounded chunk of a copy, as a bpf_loop callback: the verifier checks
 * it once, where an unrolled loop cost 6.1's verifier its 1M-instruction
 * limit. Non-zero ends the copy.
 */
static long copy_chunk(__u64 idx, void *ctx)
{
	struct copy_state *c = ctx;
	__u32 chunk = c->left;

	(void)idx;
	if (!chunk)
		return 1;
	if (chunk > PPBPF_COPY_CHUNK)
		chunk = PPBPF_COPY_CHUNK;
	/* 1..CHUNK for the verifier, unchanged at run time: before 6.8 it learns no lower bound from != 0. */
	chunk = ((chunk - 1) & (PPBPF_COPY_CHUNK - 1)) + 1;
	if (bpf_skb_load_bytes(c->skb, c->from, c->dst + (c->at & (PPBPF_MAX_HEADER - 1)), chunk)) {
		c->err = -1;
		return 1;
	}
	c->from += chunk;
	c->at += chunk;
	c->left -= chunk;
	return 0;
}

/* Copy n payload bytes at payload offset `from` into dst[at...] (dst: see struct copy_state). */
static __always_inline int copy_payload(struct __sk_buff *skb, __u32 from, __u8 *dst, __u32 at, __u32 n)
{
	struct copy_state c = { .skb = skb, .dst = dst, .from = from, .at = at, .left = n };

	bpf_loop(PPBPF_COPY_CALLS, copy_chunk, &c, 0);
	return c.err || c.left ? -1 : 0;
}

/* One byte of a comparison of payload bytes with kept ones (err = 1 where they differ). Rare: no hurry. */
static long compare_byte(__u64 idx, void *ctx)
{
	struct copy_state *c = ctx;
	__u8 b;

	if (bpf_skb_load_bytes(c->skb, c->from + (__u32)idx, &b, 1)) {
		c->err = -1;
		return 1;
	}
	if (b != c->dst[(c->at + (__u32)idx) & (PPBPF_MAX_HEADER - 1)]) {
		c->err = 1;
		return 1;
	}
	return 0;
}

/* Are the n payload bytes at `from` the same as dst[at...]? 1, 0, or -1 if they cannot be read. */
static __always_inline int same_payload(struct __sk_buff *skb, __u32 from, __u8 *dst, __u32 at, __u32 n)
{
	struct copy_state c = { .skb = skb, .dst = dst, .from = from, .at = at };

	bpf_loop(n, compare_byte, &c, 0);
	return c.err < 0 ? -1 : !c.err;
}

#endif /* PPBPF_LIB_SEGMENT_H */
