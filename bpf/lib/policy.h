/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The port policy: which ports are tracked (bitmaps), which peers are
 * trusted (LPM tries, and --local-uid for peers on this host), what headers a
 * port accepts, and the live policy a pending header is judged under.
 */
#ifndef PPBPF_LIB_POLICY_H
#define PPBPF_LIB_POLICY_H

#include "addr.h"
#include "maps.h"
#include "ordering.h"
#include "stats.h"
#include "verdict.h"

/* Is the port's bit set in a per-port bitmap? No helper call: array lookups are inlined. */
static __always_inline int port_bit(void *bitmap, __u32 port)
{
	__u32 word = (port >> 6) & (PORT_BITMAP_WORDS - 1);
	__u64 *bits = bpf_map_lookup_elem(bitmap, &word);

	return bits && (*bits >> (port & 63)) & 1;
}

/*
 * Is addr (IPv4: first 4 bytes) in one of the port's blocks, in a pair of
 * per-port prefix tries (IPv4, IPv6: trust, or the sending side's destinations)?
 */
static __always_inline int in_port_blocks(void *tries4, void *tries6, __u16 port, int v4, const __u8 *addr)
{
	if (v4) {
		struct ppbpf_trust4_key k = { .prefixlen = PPBPF_TRUST_PORT_BITS + 32, .port = bpf_htons(port) };

		__builtin_memcpy(k.addr, addr, 4);
		return bpf_map_lookup_elem(tries4, &k) != NULL;
	} else {
		struct ppbpf_trust6_key k = { .prefixlen = PPBPF_TRUST_PORT_BITS + 128, .port = bpf_htons(port) };

		__builtin_memcpy(k.addr, addr, 16);
		return bpf_map_lookup_elem(tries6, &k) != NULL;
	}
}

/* Is addr (IPv4: first 4 bytes) trusted on this local port? */
static __always_inline int trusted(__u16 port, int v4, const __u8 *addr)
{
	return in_port_blocks(&trust4, &trust6, port, v4, addr);
}

/*
 * Where a port takes trusted peers on this host from one user only
 * (--local-uid: else any local process could connect from a trusted address
 * and forge headers): is the peer, if it is a socket of this network
 * namespace, that user's? The peer is found as the socket a packet back to
 * it would reach. One not found here is remote: its address alone counts.
 */
static __always_inline int local_peer_ok(struct __sk_buff *skb, const struct ppbpf_port_policy *pol, int v4,
					 const struct ppbpf_endpoint *local, const struct ppbpf_endpoint *peer)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *skc;
	struct tcp_sock *tp;
	__u32 tlen;
	int ok = 1;

	if (!(pol->flags & PPBPF_PORT_LOCAL_UID))
		return 1;
	tlen = sock_tuple(&t, v4, local, peer);
	skc = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!skc)
		return 1;
	tp = bpf_skc_to_tcp_sock(skc);
	if (tp)
		ok = tp->inet_conn.icsk_inet.sk.sk_uid.val == pol->local_uid;
	bpf_sk_release(skc);
	return ok;
}

/* A parse result under the port's policy: a version it refuses is an error. */
static __always_inline int apply_policy(int rc, const struct ppbpf_hdr *h, __u32 port_flags)
{
	if (rc > 0 && (port_flags & (h->version == 1 ? PPBPF_PORT_NO_V1 : PPBPF_PORT_NO_V2)))
		return PPBPF_E_VERSION;
	return rc;
}

/* The largest header a port accepts. */
static __always_inline __u32 max_header_of(const struct ppbpf_port_policy *pol)
{
	return pol->max_header && pol->max_header < PPBPF_MAX_HEADER ? pol->max_header : PPBPF_MAX_HEADER;
}

/*
 * The policy a pending header is judged under: the port's live one, if the
 * peer is still trusted there (and, on a --local-uid port, is a socket of
 * that user if it is on this host). Else the header is not honoured (a policy
 * change applies to headers still pending): the socket is rejected if the
 * port rejects untrusted peers, else left plain. Returns the policy, or NULL
 * once that verdict is given (drop is what the segment gets).
 */
static __always_inline struct ppbpf_port_policy *live_policy(struct __sk_buff *skb, struct ppbpf_sk *rec,
							     __u32 have, int *drop)
{
	__u16 port = rec->local.port;
	struct ppbpf_port_policy *pol = bpf_map_lookup_elem(&ports, &port);

	*drop = 0;
	if (!pol || !trusted(port, rec->peer_v4, rec->peer.addr))
		count(PPBPF_CNT_REVOKED);
	else if (local_peer_ok(skb, pol, rec->peer_v4, &rec->local, &rec->peer))
		return pol;
	if (!claim_verdict(rec)) {
		*drop = 1;
		return NULL;
	}
	if (pol && (pol->flags & PPBPF_PORT_REJECT_UNTRUSTED)) {
		WRITE_ONCE(rec->info.have, have);
		reject(rec, PPBPF_E_UNTRUSTED);
		*drop = 1;
	} else {
		count(PPBPF_CNT_UNTRUSTED);
		make_plain(rec, have);
	}
	return NULL;
}

/*
 * A socket without a record: would sockops track it? A child is in the
 * kernel's tables (accept() can dequeue it, segments find it) a moment
 * before the sockops callback that creates its record has run, so "not yet"
 * must not look like "never".
 */
static __always_inline int will_be_tracked(struct bpf_sock *sk)
{
	__u16 port = (__u16)sk->src_port;
	__u32 r[4] = { sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3] };
	struct ppbpf_port_policy *pol;
	__u8 peer[16] = {};
	int v4;

	if (sk->state != BPF_TCP_ESTABLISHED && sk->state != BPF_TCP_SYN_RECV)
		return 0;
	pol = bpf_map_lookup_elem(&ports, &port);
	if (!pol)
		return 0;
	if (pol->flags & PPBPF_PORT_REJECT_UNTRUSTED)
		return 1;
	v4 = norm_addr(sk->family, sk->dst_ip4, r, peer);
	return trusted(port, v4, peer);
}

#endif /* PPBPF_LIB_POLICY_H */
