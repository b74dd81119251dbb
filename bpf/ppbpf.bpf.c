// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * ppbpf's kernel side, "annotate" mode: the byte stream is never modified,
 * only held back until the header is judged, or dropped once it is rejected.
 *
 *  sockops             on passive establishment, apply the port policy and the
 *                      trust check, create the socket's record and its table
 *                      entry (or reject it); on close, drop the table and
 *                      pending entries
 *  cgroup_skb/ingress  copy the first stream bytes of tracked sockets, in
 *                      sequence, run the shared parser over them, hold header
 *                      segments until the verdict, drop a rejected socket's
 *  cgroup/getsockopt   getsockopt(fd, SOL_PPBPF, ...): the query ABI
 *  cgroup/getpeername  accept()/getpeername() return the original source
 *  iter/tcp            the sweep (run by `ppbpf run`): timeouts and resets
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ppbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/*
 * The record is written in softirq while getsockopt may copy it on another
 * CPU. Writers publish in a fixed order and readers read in the reverse
 * order, so a reader that sees the last store also sees the ones before it
 * (stores and loads keep program order on x86; the barriers stop clang).
 *   writer: need, then have                       (still pending)
 *           result fields, then state, then have  (a verdict)
 *   reader: have, need, state, then the fields
 */
#define barrier() asm volatile("" ::: "memory")
#define READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	/* Atomic: sockops runs in process context too, and a softirq on this CPU may interrupt it. */
	if (v)
		__sync_fetch_and_add(v, 1);
}

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

/* Is the port's bit set in a per-port bitmap? No helper call: array lookups are inlined. */
static __always_inline int port_bit(void *bitmap, __u32 port)
{
	__u32 word = (port >> 6) & (65536 / 64 - 1);
	__u64 *bits = bpf_map_lookup_elem(bitmap, &word);

	return bits && (*bits >> (port & 63)) & 1;
}

/* Equal 16-byte addresses (BPF has no memcmp). */
static __always_inline int same_addr(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

/* Is addr (IPv4: first 4 bytes) trusted on this local port? */
static __always_inline int trusted(__u16 port, int v4, const __u8 *addr)
{
	if (v4) {
		struct ppbpf_trust4_key k = { .prefixlen = PPBPF_TRUST_PORT_BITS + 32, .port = bpf_htons(port) };

		__builtin_memcpy(k.addr, addr, 4);
		return bpf_map_lookup_elem(&trust4, &k) != NULL;
	} else {
		struct ppbpf_trust6_key k = { .prefixlen = PPBPF_TRUST_PORT_BITS + 128, .port = bpf_htons(port) };

		__builtin_memcpy(k.addr, addr, 16);
		return bpf_map_lookup_elem(&trust6, &k) != NULL;
	}
}

/*
 * A tuple for bpf_skc_lookup_tcp(): a packet from src:sport to dst:dport
 * (addresses as every map keeps them, ports in host order). Returns its size.
 */
static __always_inline __u32 sock_tuple(struct bpf_sock_tuple *t, int v4, const __u8 *src, __u16 sport,
					const __u8 *dst, __u16 dport)
{
	if (v4) {
		__builtin_memcpy(&t->ipv4.saddr, src, 4);
		__builtin_memcpy(&t->ipv4.daddr, dst, 4);
		t->ipv4.sport = bpf_htons(sport);
		t->ipv4.dport = bpf_htons(dport);
		return sizeof(t->ipv4);
	}
	__builtin_memcpy(t->ipv6.saddr, src, 16);
	__builtin_memcpy(t->ipv6.daddr, dst, 16);
	t->ipv6.sport = bpf_htons(sport);
	t->ipv6.dport = bpf_htons(dport);
	return sizeof(t->ipv6);
}

/*
 * Where a port takes trusted peers on this host from one user only
 * (--local-uid: else any local process could connect from a trusted address
 * and forge headers): is the peer, if it is a socket of this network
 * namespace, that user's? The peer is found as the socket a packet back to
 * it would reach. One not found here is remote: its address alone counts.
 */
static __always_inline int local_peer_ok(struct __sk_buff *skb, const struct ppbpf_port_policy *pol, int v4,
					 const __u8 *local, __u16 local_port, const __u8 *peer, __u16 peer_port)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *skc;
	struct tcp_sock *tp;
	__u32 tlen;
	int ok = 1;

	if (!(pol->flags & PPBPF_PORT_LOCAL_UID))
		return 1;
	tlen = sock_tuple(&t, v4, local, local_port, peer, peer_port);
	skc = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!skc)
		return 1;
	tp = bpf_skc_to_tcp_sock(skc);
	if (tp)
		ok = tp->inet_conn.icsk_inet.sk.sk_uid.val == pol->local_uid;
	bpf_sk_release(skc);
	return ok;
}

/* ---- segments ------------------------------------------------------------------ */

/* IPv6 extension headers a segment may carry before TCP, at most. */
#define IPV6_EXT_MAX 4
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_DSTOPTS 60
#define IPPROTO_AH 51

/* Where a TCP segment's payload is, and who sent it. */
struct segment {
	__u32 seq;         /* sequence number of the first payload byte */
	__u32 ack;         /* what it acknowledges */
	__u32 off;         /* payload offset in the skb */
	__u32 len;         /* payload bytes */
	__u32 ip_len;      /* bytes of the IP header and its extension headers */
	__u16 peer_port;   /* host order */
	__u16 local_port;  /* host order */
	__u8 peer_addr[16]; /* IPv4 in the first 4 bytes */
	__u8 local_addr[16];
	__u8 v4;           /* the addresses are IPv4 */
	__u8 rst;          /* the RST flag */
};

/* The TCP header at ip_len: ports, sequence numbers, the payload's place. */
static __always_inline void take_tcp(struct __sk_buff *skb, const struct tcphdr *th, __u32 ip_len,
				     struct segment *s)
{
	s->ip_len = ip_len;
	s->off = ip_len + th->doff * 4;
	s->len = skb->len > s->off ? skb->len - s->off : 0;
	s->seq = bpf_ntohl(th->seq) + th->syn; /* a SYN (fast open) takes one sequence number */
	s->ack = bpf_ntohl(th->ack_seq);
	s->rst = th->rst;
	s->peer_port = bpf_ntohs(th->source);
	s->local_port = bpf_ntohs(th->dest);
}

/* The common case, read in place: IPv4 or IPv6 and TCP right after, in the skb's linear part. */
static __always_inline int read_segment_direct(struct __sk_buff *skb, struct segment *s)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct tcphdr *th;
	__u32 ip_len;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
			return -1;
		ip_len = ip->ihl * 4;
		if (ip_len < sizeof(*ip))
			return -1;
		s->v4 = norm_addr(AF_INET, ip->saddr, NULL, s->peer_addr);
		norm_addr(AF_INET, ip->daddr, NULL, s->local_addr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		ip_len = sizeof(*ip6);
		s->v4 = norm_addr(AF_INET6, 0, (const __u32 *)&ip6->saddr, s->peer_addr);
		norm_addr(AF_INET6, 0, (const __u32 *)&ip6->daddr, s->local_addr);
	} else {
		return -1;
	}
	th = data + (ip_len & 63); /* the mask: a bound for the verifier, ihl is 4 bits */
	if ((void *)(th + 1) > end)
		return -1;
	take_tcp(skb, th, ip_len, s);
	return 0;
}

/*
 * Where TCP starts behind an IPv6 header whose next header is `next`: its
 * extension headers (hop-by-hop, routing, destination options, AH) are
 * followed, up to IPV6_EXT_MAX. Returns the offset, or 0.
 */
static __always_inline __u32 ipv6_tcp_offset(struct __sk_buff *skb, __u8 next)
{
	__u32 off = sizeof(struct ipv6hdr);

	for (int i = 0; i < IPV6_EXT_MAX; i++) {
		__u8 eh[2];

		if (next == IPPROTO_TCP)
			return off;
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS && next != IPPROTO_AH)
			return 0;
		if (bpf_skb_load_bytes(skb, off, eh, sizeof(eh)))
			return 0;
		off += next == IPPROTO_AH ? (eh[1] + 2) * 4 : (eh[1] + 1) * 8;
		next = eh[0];
	}
	return next == IPPROTO_TCP ? off : 0;
}

/* Decode the IPv4/IPv6 and TCP headers of skb. Returns 0, or -1 for anything else. */
static __always_inline int read_segment(struct __sk_buff *skb, struct segment *s)
{
	struct tcphdr th;
	__u32 ip_len;

	__builtin_memset(s, 0, sizeof(*s));
	/* Headers almost always sit in the linear part: read them there, without a helper call. */
	if (!read_segment_direct(skb, s))
		return 0;
	__builtin_memset(s, 0, sizeof(*s));
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_TCP)
			return -1;
		ip_len = ip.ihl * 4;
		s->v4 = norm_addr(AF_INET, ip.saddr, NULL, s->peer_addr);
		norm_addr(AF_INET, ip.daddr, NULL, s->local_addr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		ip_len = ipv6_tcp_offset(skb, ip6.nexthdr);
		if (!ip_len)
			return -1;
		s->v4 = norm_addr(AF_INET6, 0, (const __u32 *)&ip6.saddr, s->peer_addr);
		norm_addr(AF_INET6, 0, (const __u32 *)&ip6.daddr, s->local_addr);
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes(skb, ip_len & 0x3ff, &th, sizeof(th))) /* the mask: a bound, and no real header is longer */
		return -1;
	take_tcp(skb, &th, ip_len & 0x3ff, s);
	return 0;
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

/* ---- judging a header ---------------------------------------------------------- */

/* The first 8 TLV types kept for the socket, a summary for the table. */
static __always_inline void tlv_types(const struct ppbpf_sk_tlvs *t, __u32 end, struct ppbpf_conn *c)
{
	__u32 pos = 0;

#pragma unroll
	for (int i = 0; i < 8; i++) {
		__u32 len;

		if (pos + PPBPF_TLV_HDR_LEN > end || pos > PPBPF_TLV_MAX - PPBPF_TLV_HDR_LEN)
			break;
		c->tlv_types[i] = t->bytes[pos & (PPBPF_TLV_MAX - 1)];
		len = (__u32)t->bytes[(pos + 1) & (PPBPF_TLV_MAX - 1)] << 8 | t->bytes[(pos + 2) & (PPBPF_TLV_MAX - 1)];
		pos += PPBPF_TLV_HDR_LEN + len;
	}
}

static __always_inline __u32 tlv_cap(void)
{
	__u32 zero = 0;
	struct ppbpf_config *c = bpf_map_lookup_elem(&settings, &zero);
	__u32 cap = c ? c->tlv_cap : PPBPF_TLV_CAP_DEFAULT;

	return cap > PPBPF_TLV_MAX ? PPBPF_TLV_MAX : cap;
}

/* Keep the header's TLVs (up to the cap) beside the record. Returns where, or NULL. */
static __always_inline struct ppbpf_sk_tlvs *keep_tlvs(struct bpf_sock *sk, struct ppbpf_sk *rec,
						      struct ppbpf_pending *pend, const struct ppbpf_hdr *h)
{
	__u32 n = h->tlv_len, cap = tlv_cap();
	struct ppbpf_sk_tlvs *t;

	rec->info.tlv_len = h->tlv_len;
	if (n > cap) {
		n = cap;
		rec->info.flags |= PPBPF_INFO_TLV_TRUNCATED;
		count(PPBPF_CNT_TLV_TRUNCATED);
	}
	if (!n)
		return NULL;
	t = bpf_sk_storage_get(&ppbpf_tlvs, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!t) {
		count(PPBPF_CNT_NO_MEMORY);
		return NULL;
	}
	n &= 2 * PPBPF_TLV_MAX - 1; /* a bound the verifier sees; n <= PPBPF_TLV_MAX already */
	if (n > PPBPF_TLV_MAX)
		n = PPBPF_TLV_MAX;
	if (n && !bpf_probe_read_kernel(t->bytes, n, &pend->buf.data[h->tlv_off & (PPBPF_MAX_HEADER - 1)]))
		rec->info.tlv_stored = n;
	return t;
}

static __always_inline void update_conn(__u64 cookie, const struct ppbpf_sk *rec, const struct ppbpf_sk_tlvs *t)
{
	struct ppbpf_conn *c = bpf_map_lookup_elem(&conns, &cookie);

	if (!c)
		return;
	c->state = rec->info.state;
	c->error = (__s16)rec->info.error;
	c->done_ns = rec->info.done_ns;
	if (rec->info.state != PPBPF_STATE_DONE)
		return;
	c->version = rec->info.version;
	c->command = rec->info.command;
	c->family = rec->info.family;
	c->header_len = rec->info.header_len;
	c->src_port = rec->info.src_port;
	c->dst_port = rec->info.dst_port;
	__builtin_memcpy(c->src_addr, rec->info.src_addr, 16);
	__builtin_memcpy(c->dst_addr, rec->info.dst_addr, 16);
	c->n_tlvs = rec->tlv_count > 255 ? 255 : (__u8)rec->tlv_count;
	if (t)
		tlv_types(t, rec->info.tlv_stored, c);
}

static __always_inline void count_result(int rc, const struct ppbpf_hdr *h)
{
	if (rc > 0) {
		count(h->version == 1 ? PPBPF_CNT_V1 : PPBPF_CNT_V2);
		if (h->command == PPBPF_CMD_LOCAL)
			count(PPBPF_CNT_LOCAL);
		else if (h->family == PPBPF_FAM_UNSPEC || h->family == PPBPF_FAM_UNKNOWN)
			count(PPBPF_CNT_UNKNOWN);
	} else if (rc == PPBPF_E_NOT_PROXY) {
		count(PPBPF_CNT_NOT_PROXY);
	} else if (rc == PPBPF_E_TOO_LARGE) {
		count(PPBPF_CNT_ERR_TOO_LARGE);
	} else if (rc <= PPBPF_E_V1_TOO_LONG && rc >= PPBPF_E_V1_PORT) {
		count(PPBPF_CNT_ERR_V1);
	} else if (rc >= PPBPF_E_LAST) {
		count(PPBPF_CNT_ERR_V2);
	}
}

/* The counter of a kernel-side rejection reason (parser errors have theirs in count_result). */
static __always_inline void count_rejection(int error)
{
	count(PPBPF_CNT_REJECTED);
	if (error == PPBPF_E_UNTRUSTED)
		count(PPBPF_CNT_REJ_UNTRUSTED);
	else if (error == PPBPF_E_VERSION)
		count(PPBPF_CNT_REJ_VERSION);
	else if (error == PPBPF_E_TIMEOUT)
		count(PPBPF_CNT_REJ_TIMEOUT);
	else if (error == PPBPF_E_NO_ROOM)
		count(PPBPF_CNT_REJ_NO_ROOM);
	else if (error == PPBPF_E_CHANGED)
		count(PPBPF_CNT_REJ_CHANGED);
}

/*
 * Take the right to give the socket its verdict. Ingress (softirq, no socket
 * lock) and the sweep (a timeout) may both try at once; one verdict wins.
 */
static __always_inline int claim_verdict(struct ppbpf_sk *rec)
{
	return __sync_val_compare_and_swap(&rec->decided, 0, 1) == 0;
}

/* Tell `ppbpf run` about a rejection; it logs it and the sweep resets the socket. */
static __always_inline void send_event(const struct ppbpf_sk *rec, int error)
{
	struct ppbpf_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(PPBPF_CNT_EVENTS_LOST);
		return;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->cookie = rec->info.cookie;
	e->error = error;
	e->have = rec->info.have;
	e->af = rec->af;
	e->pad = 0;
	e->pad2 = 0;
	e->local_port = rec->local_port;
	e->peer_port = rec->peer_port;
	__builtin_memcpy(e->local_addr, rec->local_addr, 16);
	__builtin_memcpy(e->peer_addr, rec->peer_addr, 16);
	bpf_ringbuf_submit(e, 0);
}

/*
 * Reject a tracked socket (the caller holds its verdict): from now on ingress
 * drops every byte it is sent, so the application never reads one, and the
 * sweep of `ppbpf run` resets it.
 */
static __always_inline void reject(struct ppbpf_sk *rec, int error)
{
	rec->info.error = error;
	rec->info.need = 0;
	rec->info.done_ns = bpf_ktime_get_ns();
	barrier();
	WRITE_ONCE(rec->info.state, PPBPF_STATE_ERROR);
	count_rejection(error);
	update_conn(rec->info.cookie, rec, NULL);
	send_event(rec, error);
}

/* Give a tracked socket with no header to honour (the caller holds its verdict) a plain verdict. */
static __always_inline void make_plain(struct ppbpf_sk *rec, __u32 have)
{
	rec->info.need = 0;
	rec->info.done_ns = bpf_ktime_get_ns();
	barrier();
	WRITE_ONCE(rec->info.state, PPBPF_STATE_PLAIN);
	barrier();
	WRITE_ONCE(rec->info.have, have);
	update_conn(rec->info.cookie, rec, NULL);
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

/* What ingress does with a segment. */
#define PASS 1
#define DROP 0 /* TCP has not acknowledged the segment: the peer sends it again */

/* What recording a verdict asks of the segment that brought it. */
enum verdict_action { V_HOLD, V_PASS, V_DROP };

/*
 * Record the verdict on the stream bytes in pend: rc is the parse result
 * under the port's live policy (flags). V_HOLD while the header is
 * incomplete: the caller keeps pend. V_DROP where the socket is rejected, or
 * where the sweep took the verdict first (it may be storing a rejection
 * right now: nothing may pass before it is known).
 */
static __always_inline enum verdict_action record_verdict(struct bpf_sock *sk, struct ppbpf_sk *rec,
							   struct ppbpf_pending *pend, int rc,
							   const struct ppbpf_hdr *h, __u32 flags)
{
	struct ppbpf_sk_tlvs *tlvs = NULL;
	__u32 have = pend->l.have;

	if (rc == PPBPF_E_INCOMPLETE) {
		WRITE_ONCE(rec->info.need, h->need);
		barrier();
		WRITE_ONCE(rec->info.have, have);
		count(PPBPF_CNT_PENDING);
		return V_HOLD;
	}
	if (!claim_verdict(rec))
		return V_DROP;
	count_result(rc, h);
	if (rc <= 0 && !(rc == PPBPF_E_NOT_PROXY && (flags & PPBPF_PORT_OPTIONAL))) {
		WRITE_ONCE(rec->info.have, have);
		reject(rec, rc);
		return V_DROP;
	}
	if (rc <= 0) {
		count(PPBPF_CNT_PLAIN);
		make_plain(rec, have);
		return V_PASS;
	}
	rec->info.need = 0;
	rec->info.done_ns = bpf_ktime_get_ns();
	rec->info.version = h->version;
	rec->info.command = h->command;
	rec->info.family = h->family;
	rec->info.header_len = h->header_len;
	rec->info.src_port = h->src_port;
	rec->info.dst_port = h->dst_port;
	__builtin_memcpy(rec->info.src_addr, h->src_addr, 16);
	__builtin_memcpy(rec->info.dst_addr, h->dst_addr, 16);
	tlvs = keep_tlvs(sk, rec, pend, h);
	rec->tlv_count = h->tlv_count;
	barrier();
	WRITE_ONCE(rec->info.state, PPBPF_STATE_DONE);
	barrier();
	WRITE_ONCE(rec->info.have, have);
	update_conn(rec->info.cookie, rec, tlvs);
	return V_PASS;
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
	__u16 port = rec->local_port;
	struct ppbpf_port_policy *pol = bpf_map_lookup_elem(&ports, &port);

	*drop = 0;
	if (!pol || !trusted(port, rec->peer_v4, rec->peer_addr))
		count(PPBPF_CNT_REVOKED);
	else if (local_peer_ok(skb, pol, rec->peer_v4, rec->local_addr, port, rec->peer_addr, rec->peer_port))
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

/* Parse the contiguous stream bytes in pend under the live policy, and record the verdict. */
static __always_inline enum verdict_action judge(struct __sk_buff *skb, struct bpf_sock *sk, struct ppbpf_sk *rec,
						  struct ppbpf_pending *pend)
{
	struct ppbpf_port_policy *pol;
	struct ppbpf_hdr h;
	int rc, drop;

	pol = live_policy(skb, rec, pend->l.have, &drop);
	if (!pol)
		return drop ? V_DROP : V_PASS;
	rc = ppbpf_parse_max(&pend->buf, pend->l.have, max_header_of(pol), &h);
	return record_verdict(sk, rec, pend, apply_policy(rc, &h, pol->flags), &h, pol->flags);
}

/* ---- pending entries ------------------------------------------------------------ */

/* Is the socket's pending entry (if any) in the small map? */
static __always_inline int stored_small(const struct ppbpf_sk *rec)
{
	return rec->stored && rec->stored <= PPBPF_SMALL_MAX;
}

/*
 * n (<= PPBPF_SMALL_MAX), masked in the register that is passed on: clang
 * may spill a bounded value, and 6.1 loses the bound of a 32-bit spill.
 */
static __always_inline __u32 small_len(__u32 n)
{
	asm volatile("%0 &= 0xff" : "+r"(n));
	return n;
}

/* Store a short incomplete header (extent n) as the socket's small pending entry. 0 or < 0. */
static __always_inline int store_small(__u64 cookie, const struct ppbpf_pending *bytes, __u32 n)
{
	struct ppbpf_pending_small *tmp;
	__u32 zero = 0;

	tmp = bpf_map_lookup_elem(&scratch_small, &zero);
	if (!tmp || !n || n > PPBPF_SMALL_MAX)
		return -1;
	tmp->l = bytes->l;
	if (bpf_probe_read_kernel(tmp->bytes, small_len(n), bytes->buf.data))
		return -1;
	return bpf_map_update_elem(&pending_small, &cookie, tmp, BPF_ANY);
}

/* Load the socket's small pending entry into the scratch buffer pend. 0 or < 0. */
static __always_inline int load_small(const struct ppbpf_sk *rec, struct ppbpf_pending *pend)
{
	__u64 cookie = rec->info.cookie;
	struct ppbpf_pending_small *small = bpf_map_lookup_elem(&pending_small, &cookie);
	__u32 n = rec->stored;

	if (!small || !n || n > PPBPF_SMALL_MAX || bpf_probe_read_kernel(pend->buf.data, small_len(n), small->bytes))
		return -1;
	pend->l = small->l;
	return 0;
}

/* Drop the socket's pending entry, small or large. */
static __always_inline void drop_pending(struct ppbpf_sk *rec, __u64 cookie)
{
	if (stored_small(rec))
		bpf_map_delete_elem(&pending_small, &cookie);
	else if (rec->stored)
		bpf_map_delete_elem(&pending, &cookie);
	rec->stored = 0;
}

/*
 * An incomplete header: keep its bytes in a pending entry for the next
 * segments, a small one while they fit. bytes is the scratch, an `early`
 * entry, or the socket's large entry itself (stored in place: nothing to do).
 * If sockops saw the socket close meanwhile, the entry goes again at once:
 * nothing else would remove it.
 */
static __always_inline void keep_pending(struct ppbpf_sk *rec, struct ppbpf_pending *bytes)
{
	__u64 cookie = rec->info.cookie;
	__u32 extent = ppbpf_extent(&bytes->l);
	int err = 0;

	if (rec->stored > PPBPF_SMALL_MAX) {
		/* large: bytes is the entry itself, changed in place; it stays large */
	} else if (extent <= PPBPF_SMALL_MAX) {
		err = store_small(cookie, bytes, extent);
		rec->stored = extent;
	} else { /* new, or grown out of the small entry */
		err = bpf_map_update_elem(&pending, &cookie, bytes, BPF_ANY);
		if (!err && stored_small(rec))
			bpf_map_delete_elem(&pending_small, &cookie);
		rec->stored = extent;
	}
	if (err) {
		rec->stored = 0;
		count(PPBPF_CNT_NO_MEMORY);
		if (claim_verdict(rec))
			reject(rec, PPBPF_E_NO_ROOM); /* fail closed */
		return;
	}
	/* A locked read: ordered after the store above, as on_close orders its flag before its delete. */
	if (__sync_fetch_and_add(&rec->closing, 0))
		drop_pending(rec, cookie);
}

/* ---- sockops: lifecycle ----------------------------------------------------------- */

/* The socket's own and its peer's address (see norm_addr); both outputs zeroed. Returns 1 for IPv4. */
static __always_inline int sockops_addrs(struct bpf_sock_ops *skops, __u8 *local, __u8 *peer)
{
	__u32 l[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3] };
	__u32 r[4] = { skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2], skops->remote_ip6[3] };

	norm_addr(skops->family, skops->local_ip4, l, local);
	return norm_addr(skops->family, skops->remote_ip4, r, peer);
}

/* The `early` key of a connection: its 4-tuple as every map keeps addresses. */
static __always_inline void early_key_of(struct ppbpf_early_key *k, const __u8 *peer, const __u8 *local,
					 __u16 peer_port, __u16 local_port)
{
	__builtin_memcpy(k->peer_addr, peer, 16);
	__builtin_memcpy(k->local_addr, local, 16);
	k->peer_port = peer_port;
	k->local_port = local_port;
}

/* Take the entry of this handshake from a listener's entries (early or early_nohs), if it has one. */
static __always_inline int take_early_from(void *entries, const struct ppbpf_early_key *key, struct bpf_sock_ops *skops,
					   struct bpf_sock *sk, struct ppbpf_sk *rec)
{
	struct ppbpf_early *e = bpf_map_lookup_elem(entries, key);

	if (!e)
		return 0;
	/* of this handshake: the peer's first byte where this socket's stream starts, and our ISN + 1 acked */
	if (e->start == skops->rcv_nxt && e->ack == skops->snd_una && e->rc == PPBPF_E_UNTRUSTED) {
		count(PPBPF_CNT_UNTRUSTED); /* the wrong local user on a plain port: nothing honoured */
		if (claim_verdict(rec))
			make_plain(rec, 0);
	} else if (e->start == skops->rcv_nxt && e->ack == skops->snd_una && e->rc != PPBPF_E_INCOMPLETE) {
		count(PPBPF_CNT_HANDOFF);
		if (record_verdict(sk, rec, &e->bytes, e->rc, &e->hdr, rec->port_flags) == V_HOLD)
			keep_pending(rec, &e->bytes);
	}
	bpf_map_delete_elem(entries, key);
	return 1;
}

/* Header bytes the listener took in (and judged) for this connection, if any: record them now. */
static __always_inline void take_early(struct bpf_sock_ops *skops, struct bpf_sock *sk, const struct ppbpf_conn *c,
				       struct ppbpf_sk *rec)
{
	struct ppbpf_early_key key = {};

	early_key_of(&key, c->peer_addr, c->local_addr, c->peer_port, c->local_port);
	if (!take_early_from(&early, &key, skops, sk, rec))
		take_early_from(&early_nohs, &key, skops, sk, rec);
}

/* The record of a socket sockops tracks, with its policy and endpoints. */
static __always_inline void init_record(struct ppbpf_sk *rec, struct bpf_sock_ops *skops,
					const struct ppbpf_port_policy *pol, const struct ppbpf_conn *c,
					__u64 cookie, int v4)
{
	rec->info.abi = PPBPF_ABI_VERSION;
	rec->info.size = sizeof(rec->info);
	rec->info.cookie = cookie;
	rec->info.established_ns = c->established_ns;
	rec->info.state = PPBPF_STATE_PENDING;
	rec->info.need = PPBPF_MIN_LEN;
	rec->rcv_start = skops->rcv_nxt;
	rec->port_flags = pol->flags;
	rec->max_header = max_header_of(pol);
	rec->timeout_ms = pol->timeout_ms;
	rec->af = c->af;
	rec->peer_v4 = (__u8)v4;
	rec->local_port = c->local_port;
	rec->peer_port = c->peer_port;
	__builtin_memcpy(rec->local_addr, c->local_addr, 16);
	__builtin_memcpy(rec->peer_addr, c->peer_addr, 16);
	if (pol->flags & PPBPF_PORT_REWRITE_PEER)
		rec->info.flags |= PPBPF_INFO_REWRITE_PEER;
}

/*
 * A connection on a policy port that is trusted, or untrusted where the port
 * rejects those: its record. A trusted one also gets a table entry; a full
 * table rejects it (fail closed): it is never left untracked, and no entry is
 * evicted. An untrusted one is rejected at once, with no table entry: held
 * open, such connections must not take the table from trusted ones.
 */
static __always_inline void track(struct bpf_sock_ops *skops, const struct ppbpf_port_policy *pol,
				  struct ppbpf_conn *c, int v4, int untrusted)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct bpf_sock *sk = skops->sk;
	struct ppbpf_sk *rec;

	if (!sk)
		return;
	rec = bpf_sk_storage_get(&ppbpf_sks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!rec) {
		count(PPBPF_CNT_NO_MEMORY);
		return;
	}
	init_record(rec, skops, pol, c, cookie, v4);
	/* Watch for the close, to drop the table entry and any pending entry, and count resets. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	if (untrusted) {
		claim_verdict(rec);
		reject(rec, PPBPF_E_UNTRUSTED);
		return;
	}
	c->state = PPBPF_STATE_PENDING;
	if (bpf_map_update_elem(&conns, &cookie, c, BPF_NOEXIST)) {
		claim_verdict(rec);
		reject(rec, PPBPF_E_NO_ROOM);
		return;
	}
	count(PPBPF_CNT_TRACKED);
	take_early(skops, sk, c, rec);
}

static __always_inline void on_passive_established(struct bpf_sock_ops *skops)
{
	__u16 port = (__u16)skops->local_port;
	struct ppbpf_port_policy *pol;
	struct ppbpf_conn c = {};
	int v4, untrusted;

	/* Untracked ports leave after an inlined array read, before the hash lookup. */
	if (!port_bit(&port_bits, port))
		return;
	pol = bpf_map_lookup_elem(&ports, &port);
	if (!pol)
		return;
	v4 = sockops_addrs(skops, c.local_addr, c.peer_addr);
	untrusted = !trusted(port, v4, c.peer_addr);
	if (untrusted && !(pol->flags & PPBPF_PORT_REJECT_UNTRUSTED)) {
		count(PPBPF_CNT_UNTRUSTED);
		return;
	}
	c.established_ns = bpf_ktime_get_ns();
	c.af = (__u8)skops->family;
	c.local_port = port;
	c.peer_port = bpf_ntohl(skops->remote_port) & 0xffff; /* the port sits in the upper half */
	track(skops, pol, &c, v4, untrusted);
}

static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct bpf_sock *sk = skops->sk;
	struct ppbpf_sk *rec = sk ? bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0) : NULL;

	if (!bpf_map_delete_elem(&conns, &cookie))
		count(PPBPF_CNT_CLOSED);
	if (!rec) { /* no record to say where: both */
		bpf_map_delete_elem(&pending, &cookie);
		bpf_map_delete_elem(&pending_small, &cookie);
		return;
	}
	if (rec->reset_asked)
		count(PPBPF_CNT_RESETS);
	/* A locked write before the delete: an ingress storing an entry now sees it (keep_pending). */
	__sync_fetch_and_or(&rec->closing, 1);
	if (rec->stored) /* a header still incomplete at close */
		drop_pending(rec, cookie);
}

SEC("sockops")
int ppbpf_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}

/* ---- ingress: listeners ---------------------------------------------------------------- */

#define TCP_NEW_SYN_RECV 12

/*
 * The handshake a segment to a listener belongs to: the kernel's request
 * socket for its 4-tuple, whose sequence numbers it must carry. Returns 1
 * with the peer's first byte in *start; else 0, and *start is the segment's
 * own (a SYN cookie's ACK, or a fast open SYN: no request socket exists, and
 * the segment could as well be spoofed).
 */
static __always_inline int handshake_of(struct __sk_buff *skb, const struct segment *s, __u32 *start)
{
	struct bpf_sock_tuple t = {};
	__u32 tlen = sock_tuple(&t, s->v4, s->peer_addr, s->peer_port, s->local_addr, s->local_port);
	struct bpf_sock *skc;
	int found = 0;

	*start = s->seq;
	skc = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!skc)
		return 0;
	if (skc->state == TCP_NEW_SYN_RECV) {
		struct tcp_request_sock *req = bpf_skc_to_tcp_request_sock(skc);

		if (req && req->snt_isn + 1 == s->ack) {
			*start = req->rcv_isn + 1;
			found = 1;
		}
	}
	bpf_sk_release(skc);
	return found;
}

/*
 * Take a segment of a handshake's header into e, in sequence from start
 * (listeners keep no runs: nothing is queued before the child exists).
 * Returns what the segment gets; e->rc says the verdict once there is one.
 */
static __always_inline int listener_take(struct __sk_buff *skb, const struct segment *s,
					 const struct ppbpf_port_policy *pol, struct ppbpf_early *e, __u32 start)
{
	__u32 max = max_header_of(pol), have = e->bytes.l.have, skip = start + have - s->seq, n;
	int rc;

	if ((__s32)skip < 0) { /* a gap before it: resent later */
		count(PPBPF_CNT_HELD);
		return DROP;
	}
	if (skip >= s->len || have >= max) { /* nothing new: a resend */
		if (e->rc != PPBPF_E_INCOMPLETE)
			return PASS; /* judged before, but no child came of it (a full accept queue): again */
		count(PPBPF_CNT_HELD);
		return DROP;
	}
	n = s->len - skip;
	if (n > max - have)
		n = max - have;
	if (copy_payload(skb, s->off + skip, e->bytes.buf.data, have, n))
		return DROP;
	have += n;
	e->bytes.l.have = have;
	e->bytes.l.head_end = (__u16)have;
	rc = ppbpf_parse_max(&e->bytes.buf, have, max, &e->hdr);
	rc = apply_policy(rc, &e->hdr, pol->flags);
	if (rc == PPBPF_E_INCOMPLETE) {
		count(PPBPF_CNT_HELD);
		return DROP;
	}
	e->rc = rc;
	if (rc <= 0 && !(rc == PPBPF_E_NOT_PROXY && (pol->flags & PPBPF_PORT_OPTIONAL))) {
		count(PPBPF_CNT_DROPPED);
		return DROP;
	}
	return PASS; /* the child is made now; if earlier bytes were held, it queues this out of order */
}

/* A new listener entry for a handshake, in the per-CPU scratch, with no bytes yet; NULL if none. */
static __always_inline struct ppbpf_early *fresh_early(__u32 start, __u32 ack, int rc)
{
	__u32 zero = 0;
	struct ppbpf_early *e = bpf_map_lookup_elem(&scratch_early, &zero);

	if (!e)
		return NULL;
	e->start = start;
	e->ack = ack;
	e->born_ns = bpf_ktime_get_ns();
	e->rc = rc;
	e->busy = 0;
	__builtin_memset(&e->bytes.l, 0, sizeof(e->bytes.l));
	return e;
}

/*
 * A listener saw payload (TCP_DEFER_ACCEPT, or data on the handshake's last
 * ACK): the child socket will be made in this same softirq, and its data
 * queued, without passing through this hook again. So the header is judged
 * here, into an entry for the handshake that sockops takes with the child.
 * Only a complete, acceptable header (or none, on an optional port) lets the
 * segment through, and its resend passes again (the kernel could not make
 * the child: a full accept queue). Anything else is dropped before any
 * socket exists: no child is made, and the peer's resends meet the same
 * answer until the handshake expires. A header split over segments is kept
 * only for a handshake the kernel has (`early`); without one (`early_nohs`)
 * only a whole header's verdict is, so spoofed segments can take no room
 * from real handshakes. A reset of the handshake removes its entry.
 */
static __always_inline int on_listener_segment(struct __sk_buff *skb)
{
	struct ppbpf_early_key key = {};
	struct ppbpf_port_policy *pol;
	struct ppbpf_early *e;
	struct segment s;
	__u32 start;
	int verdict, real;
	void *entries;

	if (read_segment(skb, &s)) {
		count(PPBPF_CNT_UNDECODABLE); /* it could carry header bytes: nothing may pass unjudged */
		return DROP;
	}
	early_key_of(&key, s.peer_addr, s.local_addr, s.peer_port, s.local_port);
	if (!s.len) {
		if (s.rst)
			bpf_map_delete_elem(&early, &key);
		return PASS;
	}
	pol = bpf_map_lookup_elem(&ports, &s.local_port);
	if (!pol)
		return PASS;
	if (!trusted(s.local_port, s.v4, s.peer_addr))
		return pol->flags & PPBPF_PORT_REJECT_UNTRUSTED ? DROP : PASS;
	real = handshake_of(skb, &s, &start);
	entries = real ? (void *)&early : (void *)&early_nohs;
	if (!local_peer_ok(skb, pol, s.v4, s.local_addr, s.local_port, s.peer_addr, s.peer_port)) {
		/* a trusted address, but the wrong local user: untrusted, and sockops must know */
		if (pol->flags & PPBPF_PORT_REJECT_UNTRUSTED)
			return DROP;
		e = fresh_early(start, s.ack, PPBPF_E_UNTRUSTED); /* take_early leaves it plain */
		return !e || bpf_map_update_elem(entries, &key, e, BPF_ANY) ? DROP : PASS;
	}
	e = bpf_map_lookup_elem(entries, &key);
	if (e && e->start == start && e->ack == s.ack) { /* this handshake's: its first bytes came before */
		if (__sync_val_compare_and_swap(&e->busy, 0, 1)) {
			count(PPBPF_CNT_BUSY);
			return DROP;
		}
		verdict = listener_take(skb, &s, pol, e, start);
		if (e->rc != PPBPF_E_INCOMPLETE && verdict == DROP)
			bpf_map_delete_elem(entries, &key); /* rejected: its resends start over, and fail again */
		barrier();
		WRITE_ONCE(e->busy, 0);
		return verdict;
	}
	/* New (or an entry of an earlier connection on this 4-tuple, replaced): assembled per CPU first. */
	e = fresh_early(start, s.ack, PPBPF_E_INCOMPLETE);
	if (!e)
		return DROP;
	verdict = listener_take(skb, &s, pol, e, start);
	if (verdict == DROP && e->rc == PPBPF_E_INCOMPLETE && !real) {
		count(PPBPF_CNT_NO_HANDSHAKE); /* the first piece of a split header, with no handshake: no state */
		return DROP;
	}
	if (verdict == PASS || (e->rc == PPBPF_E_INCOMPLETE && e->bytes.l.have)) {
		/* a verdict for sockops, or the first piece of a split header; a copy of 4.4 KB, only here */
		if (bpf_map_update_elem(entries, &key, e, BPF_ANY)) {
			count(PPBPF_CNT_NO_MEMORY);
			return DROP;
		}
	}
	return verdict;
}

/* ---- ingress: streams ------------------------------------------------------------------ */

/*
 * A segment over kept bytes must bring the same bytes there (see
 * assemble.h). 1 if it does, 0 if not, -1 if they cannot be read.
 */
static __always_inline int kept_agree(struct __sk_buff *skb, const struct segment *s, struct ppbpf_pending *pend,
				      const struct ppbpf_seg_plan *p)
{
	/* Unrolled: 6.1's verifier takes a loop around a bpf_loop call for a back-edge it refuses. */
#pragma unroll
	for (int i = 0; i <= PPBPF_RUNS; i++) {
		__u32 lo, hi;
		int same;

		if (!ppbpf_overlap(&pend->l, p, i, &lo, &hi))
			continue;
		same = same_payload(skb, s->off + p->skip + (lo - p->at), pend->buf.data, lo, hi - lo);
		if (same != 1)
			return same;
	}
	return 1;
}

/*
 * Take a segment of a pending header (the caller holds the socket's busy
 * flag): where its bytes go, then the verdict over the contiguous bytes. The
 * first bytes are taken in the per-CPU scratch: a header that came whole
 * never needs a pending entry.
 */
static __always_inline int take_stream_segment(struct __sk_buff *skb, struct bpf_sock *sk, struct ppbpf_sk *rec,
					       const struct segment *s)
{
	__u64 cookie = rec->info.cookie;
	struct ppbpf_seg_plan plan;
	struct ppbpf_pending *pend;
	enum verdict_action v;
	__u32 zero = 0;
	int agrees;

	if (READ_ONCE(rec->decided)) /* judged meanwhile (another CPU, or the sweep, maybe still storing it) */
		return READ_ONCE(rec->info.state) == PPBPF_STATE_ERROR || READ_ONCE(rec->info.state) ==
			PPBPF_STATE_PENDING ? DROP : PASS;
	if (rec->stored > PPBPF_SMALL_MAX) { /* a long header: taken in its own entry */
		pend = bpf_map_lookup_elem(&pending, &cookie);
		if (!pend)
			return DROP;
	} else {
		pend = bpf_map_lookup_elem(&scratch, &zero);
		if (!pend)
			return DROP;
		__builtin_memset(&pend->l, 0, sizeof(pend->l));
		if (rec->stored && load_small(rec, pend))
			return DROP;
	}
	ppbpf_seg_plan(&pend->l, (__s32)(s->seq - rec->rcv_start), s->len, rec->max_header, &plan);
	if (plan.action == PPBPF_SEG_PASS)
		return PASS;
	if (plan.action == PPBPF_SEG_DROP) { /* no slot for a run yet: resent, when a gap may have closed */
		count(PPBPF_CNT_HELD);
		return DROP;
	}
	if (plan.check) { /* a resend, or a segment over one: its bytes must be those kept */
		count(PPBPF_CNT_RETRANSMIT);
		agrees = kept_agree(skb, s, pend, &plan);
		if (agrees != 1) {
			if (!agrees && claim_verdict(rec)) {
				WRITE_ONCE(rec->info.have, pend->l.have);
				reject(rec, PPBPF_E_CHANGED);
				drop_pending(rec, cookie);
			}
			return DROP;
		}
	}
	if (plan.action == PPBPF_SEG_RUN)
		count(PPBPF_CNT_OUT_OF_ORDER);
	if (copy_payload(skb, s->off + plan.skip, pend->buf.data, plan.at, plan.n))
		return DROP;
	ppbpf_seg_commit(&pend->l, &plan);
	count(PPBPF_CNT_SEGMENTS);
	v = judge(skb, sk, rec, pend);
	if (v == V_HOLD) {
		keep_pending(rec, pend);
		if (plan.action == PPBPF_SEG_RUN)
			return PASS; /* TCP keeps it out of order, and says so to the sender (SACK) */
		count(PPBPF_CNT_HELD);
		return DROP;
	}
	drop_pending(rec, cookie);
	return v == V_PASS ? PASS : DROP;
}

/*
 * A segment of a tracked socket whose header is pending. One CPU at a time
 * takes in a socket's segments: ingress runs before the socket lock, so two
 * CPUs could otherwise both change its pending entry; a segment that finds
 * another being taken in is dropped, and resent. Until there is a verdict,
 * nothing that cannot be decoded passes either.
 */
static __always_inline int on_stream_segment(struct __sk_buff *skb, struct bpf_sock *sk, struct ppbpf_sk *rec)
{
	struct segment s;
	int verdict;

	if (read_segment(skb, &s)) {
		count(PPBPF_CNT_UNDECODABLE);
		count(PPBPF_CNT_HELD);
		return DROP;
	}
	if (!s.len)
		return PASS; /* an ACK or a FIN: no stream bytes */
	if (__sync_val_compare_and_swap(&rec->busy, 0, 1)) {
		count(PPBPF_CNT_BUSY);
		return DROP;
	}
	verdict = take_stream_segment(skb, sk, rec, &s);
	barrier();
	WRITE_ONCE(rec->busy, 0);
	return verdict;
}

/* A rejected socket, until the sweep resets it: none of its bytes reach the application. */
static __always_inline int on_rejected_segment(struct __sk_buff *skb)
{
	struct segment s;

	if (!read_segment(skb, &s) && !s.len)
		return PASS; /* an ACK or a FIN */
	count(PPBPF_CNT_DROPPED);
	return DROP;
}

SEC("cgroup_skb/ingress")
int ppbpf_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct ppbpf_sk *rec;
	__u8 state;

	/* Untracked traffic leaves here: its local port has no policy. */
	if (!sk || !port_bit(&port_bits, sk->src_port))
		return PASS;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return PASS;
	if (sk->state == BPF_TCP_LISTEN)
		return on_listener_segment(skb);
	rec = bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0);
	if (!rec)
		return PASS;
	state = READ_ONCE(rec->info.state);
	if (state == PPBPF_STATE_PENDING)
		return on_stream_segment(skb, sk, rec);
	if (state == PPBPF_STATE_ERROR)
		return on_rejected_segment(skb);
	return PASS;
}

/* ---- the query ABI ----------------------------------------------------------------------- */

/*
 * A socket without a record: would sockops track it? accept() can dequeue a
 * child a few microseconds before the sockops callback that creates its
 * record has run (the child is queued first), so "not yet" must not look
 * like "never".
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

SEC("cgroup/getsockopt")
int ppbpf_getsockopt(struct bpf_sockopt *ctx)
{
	__u8 *p = ctx->optval, *end = ctx->optval_end;
	struct bpf_sock *sk = ctx->sk;
	struct ppbpf_sk *rec;
	__u32 n;

	if (ctx->level != SOL_PPBPF || !sk)
		return 1;
	rec = bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0);
	if (!rec) {
		ctx->retval = will_be_tracked(sk) ? -EAGAIN : -ENODATA;
		return 1;
	}
	count(PPBPF_CNT_QUERIES);
	if (ctx->optname == PPBPF_INFO) {
		struct ppbpf_info *out = (struct ppbpf_info *)p;
		__u32 have, need;
		__u8 state;

		if (p + sizeof(rec->info) > end) {
			ctx->retval = -EINVAL;
			return 1;
		}
		/* Reverse of the writers' order: a consistent snapshot (see the top of this file). */
		have = READ_ONCE(rec->info.have);
		barrier();
		need = READ_ONCE(rec->info.need);
		barrier();
		state = READ_ONCE(rec->info.state);
		barrier();
		__builtin_memcpy(p, &rec->info, sizeof(rec->info));
		out->have = have;
		out->need = need;
		out->state = state;
		ctx->optlen = sizeof(rec->info);
		ctx->retval = 0;
	} else if (ctx->optname == PPBPF_TLVS) {
		if (p + PPBPF_TLVS_SIZE > end) {
			ctx->retval = -EINVAL;
			return 1;
		}
		struct ppbpf_sk_tlvs *t = bpf_sk_storage_get(&ppbpf_tlvs, sk, 0, 0);

		n = t ? rec->info.tlv_stored : 0;
		if (n > PPBPF_TLV_MAX)
			n = PPBPF_TLV_MAX;
		*(__u32 *)p = n;
		if (n)
			bpf_probe_read_kernel(p + 4, n, t->bytes);
		ctx->optlen = (int)(4 + n);
		ctx->retval = 0;
	} else {
		ctx->retval = -ENOPROTOOPT;
	}
	return 1;
}

/* The record's original source, if it is to replace the peer address. */
static __always_inline struct ppbpf_sk *rewrite_source(struct bpf_sock *sk)
{
	struct ppbpf_sk *rec;

	if (!sk || !port_bit(&rewrite_bits, sk->src_port))
		return NULL;
	rec = bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0);
	if (!rec || READ_ONCE(rec->info.state) != PPBPF_STATE_DONE)
		return NULL;
	barrier(); /* the fields after the state: they were written before it */
	if (!(rec->info.flags & PPBPF_INFO_REWRITE_PEER) || rec->info.command != PPBPF_CMD_PROXY)
		return NULL;
	return rec;
}

SEC("cgroup/getpeername4")
int ppbpf_getpeername4(struct bpf_sock_addr *ctx)
{
	struct ppbpf_sk *rec = rewrite_source(ctx->sk);
	__u32 a;

	if (!rec || rec->info.family != PPBPF_FAM_TCP4)
		return 1; /* an IPv6 client cannot be told to an IPv4 socket */
	__builtin_memcpy(&a, rec->info.src_addr, 4);
	ctx->user_ip4 = a;
	ctx->user_port = bpf_htons(rec->info.src_port);
	count(PPBPF_CNT_REWRITES);
	return 1;
}

SEC("cgroup/getpeername6")
int ppbpf_getpeername6(struct bpf_sock_addr *ctx)
{
	struct ppbpf_sk *rec = rewrite_source(ctx->sk);
	__u32 a[4];

	if (!rec)
		return 1;
	if (rec->info.family == PPBPF_FAM_TCP6) {
		__builtin_memcpy(a, rec->info.src_addr, 16);
	} else if (rec->info.family == PPBPF_FAM_TCP4) { /* as ::ffff:a.b.c.d on a dual-stack socket */
		a[0] = 0;
		a[1] = 0;
		a[2] = bpf_htonl(0x0000ffff);
		__builtin_memcpy(&a[3], rec->info.src_addr, 4);
	} else {
		return 1;
	}
	ctx->user_ip6[0] = a[0];
	ctx->user_ip6[1] = a[1];
	ctx->user_ip6[2] = a[2];
	ctx->user_ip6[3] = a[3];
	ctx->user_port = bpf_htons(rec->info.src_port);
	count(PPBPF_CNT_REWRITES);
	return 1;
}

/* ---- the sweep: resets and timeouts ------------------------------------------------------ */

/* A kfunc (Linux 6.5+) for TCP/UDP socket iterators: abort the socket, sending an RST. */
extern int bpf_sock_destroy(struct sock_common *sk) __ksym __weak;

/*
 * Set by the loader from the kernel's BTF: bpf_sock_destroy exists. Where
 * it does not (6.1), the verifier drops the call as dead code, and the
 * sweep names the socket for `ppbpf run` to reset over inet_diag.
 */
const volatile __u32 have_sock_destroy = 0;

/* The header timeout of the socket's port: the live policy, else the one at establishment. */
static __always_inline __u64 timeout_ns(const struct ppbpf_sk *rec)
{
	__u16 port = rec->local_port;
	struct ppbpf_port_policy *pol = bpf_map_lookup_elem(&ports, &port);

	return (__u64)(pol ? pol->timeout_ms : rec->timeout_ms) * NSEC_PER_MSEC;
}

/* A header still incomplete at its deadline is rejected; on an optional port, silence is plain. */
static __always_inline void check_deadline(struct ppbpf_sk *rec, __u64 now)
{
	__u64 limit = timeout_ns(rec);

	if (!limit || now - rec->info.established_ns < limit || !claim_verdict(rec))
		return;
	if ((rec->port_flags & PPBPF_PORT_OPTIONAL) && READ_ONCE(rec->info.have) == 0) {
		rec->info.need = 0;
		rec->info.done_ns = now;
		barrier();
		WRITE_ONCE(rec->info.state, PPBPF_STATE_PLAIN);
		count(PPBPF_CNT_TIMEOUT_PLAIN);
		update_conn(rec->info.cookie, rec, NULL);
		return;
	}
	reject(rec, PPBPF_E_TIMEOUT);
}

/* Ask the reader (`ppbpf run`) to reset the socket: "<cookie> <error> <family> <local> <lport> <remote> <rport>". */
static __always_inline void ask_reset(struct seq_file *seq, struct sock_common *skc, const struct ppbpf_sk *rec)
{
	__u16 rport = bpf_ntohs(skc->skc_dport);
	__u16 lport = skc->skc_num;

	if (skc->skc_family == AF_INET) {
		__be32 l = skc->skc_rcv_saddr, r = skc->skc_daddr;

		BPF_SEQ_PRINTF(seq, "%llu %d 2 %pI4 %u %pI4 %u\n", rec->info.cookie, rec->info.error, &l, lport, &r,
			       rport);
	} else {
		struct in6_addr l = skc->skc_v6_rcv_saddr, r = skc->skc_v6_daddr;

		BPF_SEQ_PRINTF(seq, "%llu %d 10 %pI6 %u %pI6 %u\n", rec->info.cookie, rec->info.error, &l, lport, &r,
			       rport);
	}
}

/*
 * Run by reading the pinned iterator (`ppbpf run` does, after each event and
 * every --sweep-ms): for each TCP socket of the reader's network namespace
 * with a record, time out late headers and reset rejected sockets. Prints
 * "<cookie> <error>" per socket reset, or, where the kernel has no
 * bpf_sock_destroy, the line of ask_reset() per socket for the reader to reset.
 */
/* Longer than any handshake lives (SYN-ACK retries): a listener entry this old no child will take. */
#define EARLY_TTL_NS (75ULL * 1000 * NSEC_PER_MSEC)

/* A bpf_for_each_map_elem callback: remove a listener entry no child took in time. */
static long early_gc(void *map, const void *key, void *value, void *ctx)
{
	const struct ppbpf_early *e = value;
	__u64 now = *(__u64 *)ctx;

	if (now - e->born_ns > EARLY_TTL_NS)
		bpf_map_delete_elem(map, key);
	return 0;
}

SEC("iter/tcp")
int ppbpf_sweep(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;
	struct ppbpf_sk *rec;
	int state;

	if (!skc) { /* the end of the walk (an iterator's last call): the listener entries' turn */
		__u64 now = bpf_ktime_get_ns();

		bpf_for_each_map_elem(&early, early_gc, &now, 0);
		bpf_for_each_map_elem(&early_nohs, early_gc, &now, 0);
		return 0;
	}
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0; /* a request or time-wait socket: never tracked */
	rec = bpf_sk_storage_get(&ppbpf_sks, tp, 0, 0);
	if (!rec)
		return 0;
	if (READ_ONCE(rec->info.state) == PPBPF_STATE_PENDING)
		check_deadline(rec, bpf_ktime_get_ns());
	if (READ_ONCE(rec->info.state) != PPBPF_STATE_ERROR)
		return 0;
	state = skc->skc_state;
	if (state != TCP_ESTABLISHED && state != TCP_CLOSE_WAIT)
		return 0; /* already closing or closed */
	rec->reset_asked = 1; /* on_close counts the reset */
	if (!have_sock_destroy) {
		ask_reset(ctx->meta->seq, skc, rec);
		return 0;
	}
	if (bpf_sock_destroy(skc)) {
		rec->reset_asked = 0;
		return 0;
	}
	BPF_SEQ_PRINTF(ctx->meta->seq, "%llu %d\n", rec->info.cookie, rec->info.error);
	return 0;
}

/* ---- the parser self-test ----------------------------------------------------------------- */

/* ppbpf_selftest's input and answer, written and read by the loader. */
struct ppbpf_bpf_buf selftest_in;
__u32 selftest_len;
__u32 selftest_max;
int selftest_rc;
struct ppbpf_hdr selftest_hdr;

/*
 * Run by the loader (BPF_PROG_TEST_RUN) before it attaches: the parser, as
 * this kernel's verifier left it, must answer as userspace does. No probe can
 * tell otherwise: 6.1's verifier removed live TLV checks as dead code.
 */
SEC("syscall")
int ppbpf_selftest(void *ctx __attribute__((unused)))
{
	selftest_rc = ppbpf_parse_max(&selftest_in, selftest_len, selftest_max, &selftest_hdr);
	return 0;
}
