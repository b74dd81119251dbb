// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Network impairment where the kernel has no netem, for `ppbpf selftest`
 * and the transparent-mode tests: never attached by `ppbpf attach`. A tc
 * classifier (clsact, direct action) that, per TCP packet, at random:
 *
 *   - drops it (IMPAIR_LOSS ppm);
 *   - duplicates it (IMPAIR_DUP ppm): a clone is redirected to the same
 *     device, to its ingress when the program runs at ingress, to its egress
 *     at egress; the clone carries IMPAIR_MARK so that this program lets it
 *     through when it comes by again, and arrives after the original;
 *   - reorders it (IMPAIR_REORDER ppm, egress only): skb->priority sends it
 *     to class 1:2 of an HTB root qdisc, a slow class, while the rest use the
 *     fast default class 1:1; packets of the fast class overtake it. Without
 *     that HTB setup (tests/integration/impair.sh: impair_on) it does nothing.
 *
 * The rates, in parts per million (their sum at most 1,000,000), are .rodata
 * (loss_ppm, dup_ppm, reorder_ppm): the self-test sets them before it loads
 * the program; the tests, which load it with `tc filter ... bpf obj`, take
 * their initial values from compile-time macros. The three builds they use:
 *
 *   impair_in       -DIMPAIR_LOSS=20000 -DIMPAIR_DUP=10000 -DIMPAIR_REORDER=0
 *                   data loss and duplication, on the server's ingress
 *   impair_ack      -DIMPAIR_LOSS=20000 -DIMPAIR_DUP=0 -DIMPAIR_REORDER=0
 *                   ACK loss, on the client's ingress
 *   impair_reorder  -DIMPAIR_LOSS=0 -DIMPAIR_DUP=0 -DIMPAIR_REORDER=20000
 *                   reordering, on the client's egress (HTB)
 *
 * Only TCP over IPv4 and IPv6 (up to 4 extension headers) behind an Ethernet
 * header (veth, lo) is touched; ARP, neighbour discovery and ICMP pass, so
 * the test network itself stays reliable. SYN segments pass too unless built
 * with -DIMPAIR_SYN=1 (a lost SYN costs a 1 s retransmission, and the
 * handshake is not what these tests are about). -DIMPAIR_PORT=P limits the
 * program to segments from or to TCP port P.
 *
 * Every verdict is TC_ACT_UNSPEC or TC_ACT_SHOT: a packet that is kept goes
 * on to the next filter of the hook (attach this one first, with the lowest
 * pref, so the program under test sees what the "wire" delivered). Note that
 * tcx programs (Linux 6.6+) run before any clsact filter at the same hook.
 *
 * What happened is counted in impair_stats (enum impair_stat), one map per
 * loaded copy: impair.sh's impair_stats reads it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef IMPAIR_LOSS
#define IMPAIR_LOSS 0
#endif
#ifndef IMPAIR_DUP
#define IMPAIR_DUP 0
#endif
#ifndef IMPAIR_REORDER
#define IMPAIR_REORDER 0
#endif
#ifndef IMPAIR_SYN
#define IMPAIR_SYN 0 /* 1: SYN segments are impaired too */
#endif
#ifndef IMPAIR_PORT
#define IMPAIR_PORT 0 /* 0: every TCP port */
#endif

#define PPM 1000000u
#if IMPAIR_LOSS < 0 || IMPAIR_DUP < 0 || IMPAIR_REORDER < 0 || IMPAIR_LOSS + IMPAIR_DUP + IMPAIR_REORDER > 1000000
#error "IMPAIR_LOSS + IMPAIR_DUP + IMPAIR_REORDER: each at least 0, together at most 1000000 ppm"
#endif

/* The rates, ppm (a loader may set them before loading). */
const volatile __u32 loss_ppm = IMPAIR_LOSS;
const volatile __u32 dup_ppm = IMPAIR_DUP;
const volatile __u32 reorder_ppm = IMPAIR_REORDER;

/* Not in vmlinux.h (they are #defines in the UAPI headers). */
#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define TCP_FLAG_SYN 0x02

/* A duplicate's mark, while it travels the hook a second time. */
#define IMPAIR_MARK 0x1A9A1Au
/* skb->priority of a reordered packet: HTB class 1:2 (major 1, minor 2). */
#define SLOW_CLASS 0x10002u

enum impair_stat {
	IMPAIR_SEEN,         /* TCP packets judged */
	IMPAIR_DROPPED,      /* dropped */
	IMPAIR_DUPLICATED,   /* cloned (the clones counted in IMPAIR_CLONES when they come by) */
	IMPAIR_REORDERED,    /* sent to the slow class */
	IMPAIR_DUP_FAILED,   /* bpf_clone_redirect() failed */
	IMPAIR_CLONES,       /* our own duplicates, let through */
	IMPAIR_SPARED,       /* TCP packets exempt (SYN, other ports, fragments) */
	IMPAIR_NSTATS
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IMPAIR_NSTATS);
	__type(key, __u32);
	__type(value, __u64);
} impair_stats SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *v = bpf_map_lookup_elem(&impair_stats, &what);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/*
 * Offset of the TCP header, or -1 when the packet is not TCP (or is an IPv4
 * fragment, or hides TCP behind more than 4 IPv6 extension headers).
 */
static __always_inline int tcp_offset(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) || ip.protocol != IPPROTO_TCP ||
		    ip.frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return -1;
		return ETH_HLEN + (ip.ihl & 15) * 4;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		struct ipv6_opt_hdr ext;
		int off = ETH_HLEN + sizeof(ip6);
		__u8 next;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
			return -1;
		next = ip6.nexthdr;
		for (int i = 0; i < 4; i++) {
			if (next == IPPROTO_TCP)
				return off;
			/* hop-by-hop, routing, destination options: 8-byte units after the first 8 */
			if (next != 0 && next != 43 && next != 60)
				return -1;
			if (bpf_skb_load_bytes(skb, off, &ext, sizeof(ext)))
				return -1;
			next = ext.nexthdr;
			off += (ext.hdrlen + 1) * 8;
		}
		return next == IPPROTO_TCP ? off : -1;
	}
	return -1;
}

SEC("tc")
int impair(struct __sk_buff *skb)
{
	/* The device's own receive path sets ingress_ifindex; locally sent packets have 0. */
	bool at_ingress = skb->ingress_ifindex && skb->ingress_ifindex == skb->ifindex;
	struct { /* the first 14 bytes of the TCP header: ports, seq, ack, data offset, flags */
		__be16 source, dest;
		__be32 seq, ack_seq;
		__u8 doff, flags;
	} __attribute__((packed)) th;
	__u32 r, mark;
	int off;

	if (skb->mark == IMPAIR_MARK) { /* a duplicate we made: through, unmarked */
		skb->mark = 0;
		count(IMPAIR_CLONES);
		return TC_ACT_UNSPEC;
	}
	off = tcp_offset(skb);
	if (off < 0)
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, off, &th, sizeof(th)) ||
	    (!IMPAIR_SYN && (th.flags & TCP_FLAG_SYN)) ||
	    (IMPAIR_PORT && th.source != bpf_htons(IMPAIR_PORT) && th.dest != bpf_htons(IMPAIR_PORT))) {
		count(IMPAIR_SPARED);
		return TC_ACT_UNSPEC;
	}
	count(IMPAIR_SEEN);

	r = bpf_get_prandom_u32() % PPM;
	if (r < loss_ppm) {
		count(IMPAIR_DROPPED);
		return TC_ACT_SHOT;
	}
	r -= loss_ppm;
	if (r < dup_ppm) {
		mark = skb->mark;
		skb->mark = IMPAIR_MARK; /* the clone takes the mark; the original gets its own back */
		if (bpf_clone_redirect(skb, skb->ifindex, at_ingress ? BPF_F_INGRESS : 0))
			count(IMPAIR_DUP_FAILED);
		else
			count(IMPAIR_DUPLICATED);
		skb->mark = mark;
		return TC_ACT_UNSPEC;
	}
	r -= dup_ppm;
	if (r < reorder_ppm && !at_ingress) {
		skb->priority = SLOW_CLASS;
		count(IMPAIR_REORDERED);
	}
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
