// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * ppbpf's kernel side, "annotate" mode: the byte stream is never modified.
 *
 *  sockops             on passive establishment, apply the port policy and the
 *                      trust check, create the socket's record, its pending
 *                      buffer and its table entry; on close, drop the latter two
 *  cgroup_skb/ingress  copy the first stream bytes of tracked sockets, in
 *                      sequence, and run the shared parser over them
 *  cgroup/getsockopt   getsockopt(fd, SOL_PPBPF, ...): the query ABI
 *  cgroup/getpeername  accept()/getpeername() return the original source
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

/* ---- segments ------------------------------------------------------------------ */

/* Where a TCP segment's payload is, and who sent it. */
struct segment {
	__u32 seq;         /* sequence number of the first payload byte */
	__u32 off;         /* payload offset in the skb */
	__u32 len;         /* payload bytes */
	__u16 peer_port;   /* host order */
	__u16 local_port;  /* host order */
	__u8 peer_addr[16]; /* IPv4 in the first 4 bytes */
};

/* The TCP header of skb read in place, when the IP and TCP headers are in its linear part. */
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
		norm_addr(AF_INET, ip->saddr, NULL, s->peer_addr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		ip_len = sizeof(*ip6);
		norm_addr(AF_INET6, 0, (const __u32 *)&ip6->saddr, s->peer_addr);
	} else {
		return -1;
	}
	th = data + (ip_len & 63); /* the mask: a bound for the verifier, ihl is 4 bits */
	if ((void *)(th + 1) > end)
		return -1;
	s->off = ip_len + th->doff * 4;
	if (skb->len > s->off) {
		s->len = skb->len - s->off;
		s->seq = bpf_ntohl(th->seq) + th->syn;
		s->peer_port = bpf_ntohs(th->source);
		s->local_port = bpf_ntohs(th->dest);
	}
	return 0;
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
		norm_addr(AF_INET, ip.saddr, NULL, s->peer_addr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		/* TCP right after the fixed header: extension headers are not followed */
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_TCP)
			return -1;
		ip_len = sizeof(ip6);
		norm_addr(AF_INET6, 0, (const __u32 *)&ip6.saddr, s->peer_addr);
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes(skb, ip_len, &th, sizeof(th)))
		return -1;
	s->off = ip_len + th.doff * 4;
	if (skb->len <= s->off)
		return 0; /* no payload */
	s->len = skb->len - s->off;
	s->seq = bpf_ntohl(th.seq) + th.syn; /* a SYN (fast open) takes one sequence number */
	s->peer_port = bpf_ntohs(th.source);
	s->local_port = bpf_ntohs(th.dest);
	return 0;
}

/*
 * Copy n payload bytes at payload offset `from` into dst[at...]. dst must
 * have PPBPF_COPY_CHUNK bytes of room past PPBPF_MAX_HEADER: each call
 * copies a bounded chunk at a masked offset, which is what the verifier can
 * check.
 */
static __always_inline int copy_payload(struct __sk_buff *skb, __u32 from, __u8 *dst, __u32 at, __u32 n)
{
	for (int i = 0; i < PPBPF_COPY_CALLS; i++) {
		__u64 chunk = n; /* 64-bit: the register tested is the register passed */

		/* Hide chunk's origin so clang keeps both tests the verifier needs. */
		asm volatile("" : "+r"(chunk));
		if (chunk > PPBPF_COPY_CHUNK)
			chunk = PPBPF_COPY_CHUNK;
		if (chunk == 0)
			break;
		if (bpf_skb_load_bytes(skb, from, dst + (at & (PPBPF_MAX_HEADER - 1)), chunk))
			return -1;
		from += chunk;
		at += chunk;
		n -= chunk;
	}
	return 0;
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
	} else {
		count(PPBPF_CNT_ERR_V2);
	}
}

/*
 * Parse the stream bytes in pend; on a verdict, record it. Returns 1 while
 * the header is incomplete. The caller frees or keeps pend accordingly.
 */
static __always_inline int judge(struct bpf_sock *sk, struct ppbpf_sk *rec, struct ppbpf_pending *pend,
				 __u64 cookie)
{
	struct ppbpf_sk_tlvs *tlvs = NULL;
	struct ppbpf_hdr h;
	int rc = ppbpf_parse_max(&pend->buf, pend->have, rec->max_header, &h);
	__u8 state;

	if (rc == PPBPF_E_INCOMPLETE) {
		WRITE_ONCE(rec->info.need, h.need);
		barrier();
		WRITE_ONCE(rec->info.have, pend->have);
		count(PPBPF_CNT_PENDING);
		return 1;
	}
	rec->info.need = 0;
	rec->info.done_ns = bpf_ktime_get_ns();
	if (rc > 0) {
		rec->info.version = h.version;
		rec->info.command = h.command;
		rec->info.family = h.family;
		rec->info.header_len = h.header_len;
		rec->info.src_port = h.src_port;
		rec->info.dst_port = h.dst_port;
		__builtin_memcpy(rec->info.src_addr, h.src_addr, 16);
		__builtin_memcpy(rec->info.dst_addr, h.dst_addr, 16);
		tlvs = keep_tlvs(sk, rec, pend, &h);
		rec->tlv_count = h.tlv_count;
		state = PPBPF_STATE_DONE;
	} else if (rc == PPBPF_E_NOT_PROXY && (rec->port_flags & PPBPF_PORT_OPTIONAL)) {
		state = PPBPF_STATE_PLAIN;
		count(PPBPF_CNT_PLAIN);
	} else {
		rec->info.error = rc;
		state = PPBPF_STATE_ERROR;
	}
	barrier();
	WRITE_ONCE(rec->info.state, state);
	barrier();
	WRITE_ONCE(rec->info.have, pend->have);
	if (state != PPBPF_STATE_PLAIN)
		count_result(rc, &h);
	update_conn(cookie, rec, tlvs);
	return 0;
}

/* An incomplete header: keep its bytes in a pending entry for the next segments. */
static __always_inline void keep_pending(struct ppbpf_sk *rec, struct ppbpf_pending *bytes, __u64 cookie)
{
	if (bpf_map_update_elem(&pending, &cookie, bytes, BPF_ANY)) {
		rec->info.error = PPBPF_E_NO_ROOM;
		barrier();
		WRITE_ONCE(rec->info.state, PPBPF_STATE_ERROR);
		count(PPBPF_CNT_NO_MEMORY);
		update_conn(cookie, rec, NULL);
		return;
	}
	rec->stored = bytes->have;
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

/* Header bytes the listener took in for this connection, if any: judge them now. */
static __always_inline void take_handoff(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					 const struct ppbpf_conn *c, struct ppbpf_sk *rec, __u64 cookie)
{
	__u32 zero = 0;
	struct ppbpf_handoff *ho = bpf_map_lookup_elem(&handoff, &zero);

	if (!ho || !ho->valid)
		return;
	if (ho->seq != skops->rcv_nxt || ho->peer_port != c->peer_port || ho->local_port != c->local_port ||
	    !same_addr(ho->peer_addr, c->peer_addr))
		return;
	ho->valid = 0;
	count(PPBPF_CNT_HANDOFF);
	if (judge(sk, rec, &ho->bytes, cookie))
		keep_pending(rec, &ho->bytes, cookie);
}

/* A trusted connection on a policy port: its record and table entry. */
static __always_inline void track(struct bpf_sock_ops *skops, const struct ppbpf_port_policy *pol,
				  struct ppbpf_conn *c)
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
	rec->info.abi = PPBPF_ABI_VERSION;
	rec->info.size = sizeof(rec->info);
	rec->info.cookie = cookie;
	rec->info.established_ns = c->established_ns;
	rec->info.state = PPBPF_STATE_PENDING;
	rec->info.need = PPBPF_MIN_LEN;
	rec->rcv_start = skops->rcv_nxt;
	rec->port_flags = pol->flags;
	rec->max_header = pol->max_header && pol->max_header < PPBPF_MAX_HEADER ? pol->max_header : PPBPF_MAX_HEADER;
	if (pol->flags & PPBPF_PORT_REWRITE_PEER)
		rec->info.flags |= PPBPF_INFO_REWRITE_PEER;
	c->state = PPBPF_STATE_PENDING;
	if (bpf_map_update_elem(&conns, &cookie, c, BPF_NOEXIST))
		count(PPBPF_CNT_NO_MEMORY);
	count(PPBPF_CNT_TRACKED);
	/* Watch for the close, to drop the table entry and any pending entry. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	take_handoff(skops, sk, c, rec, cookie);
}

static __always_inline void on_passive_established(struct bpf_sock_ops *skops)
{
	__u16 port = (__u16)skops->local_port;
	struct ppbpf_port_policy *pol = bpf_map_lookup_elem(&ports, &port);
	struct ppbpf_conn c = {};
	int v4;

	if (!pol)
		return;
	v4 = sockops_addrs(skops, c.local_addr, c.peer_addr);
	if (!trusted(port, v4, c.peer_addr)) {
		count(PPBPF_CNT_UNTRUSTED);
		return;
	}
	c.established_ns = bpf_ktime_get_ns();
	c.af = (__u8)skops->family;
	c.local_port = port;
	c.peer_port = bpf_ntohl(skops->remote_port) & 0xffff; /* the port sits in the upper half */
	track(skops, pol, &c);
}

static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct bpf_sock *sk = skops->sk;
	struct ppbpf_sk *rec = sk ? bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0) : NULL;

	if (!bpf_map_delete_elem(&conns, &cookie))
		count(PPBPF_CNT_CLOSED);
	if (!rec || rec->stored) /* a header still incomplete at close */
		bpf_map_delete_elem(&pending, &cookie);
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

/* ---- ingress: the parser ------------------------------------------------------------- */

/*
 * A listener saw payload (TCP_DEFER_ACCEPT, or data on the handshake's last
 * ACK): the child socket will be created in this same softirq and will not
 * pass through this hook for it, so leave the bytes for sockops.
 */
static __always_inline void on_listener_segment(struct __sk_buff *skb)
{
	struct ppbpf_handoff *ho;
	struct segment s;
	__u32 zero = 0, n;

	/* The port bit was checked on entry: this listener's port has a policy. */
	if (read_segment(skb, &s) || !s.len)
		return;
	ho = bpf_map_lookup_elem(&handoff, &zero);
	if (!ho)
		return;
	n = s.len < PPBPF_MAX_HEADER ? s.len : PPBPF_MAX_HEADER;
	ho->valid = 0;
	if (copy_payload(skb, s.off, ho->bytes.buf.data, 0, n))
		return;
	ho->seq = s.seq;
	ho->bytes.have = n;
	ho->local_port = s.local_port;
	ho->peer_port = s.peer_port;
	__builtin_memcpy(ho->peer_addr, s.peer_addr, 16);
	ho->valid = 1;
}

/*
 * A segment of a tracked socket whose header is incomplete: take its new
 * in-sequence bytes. The first bytes are parsed in the per-CPU scratch: a
 * header that came whole never needs a pending entry.
 */
static __always_inline void on_stream_segment(struct __sk_buff *skb, struct bpf_sock *sk, struct ppbpf_sk *rec)
{
	__u64 cookie = rec->info.cookie;
	struct ppbpf_pending *pend;
	__u32 next, skip, n, zero = 0;
	struct segment s;

	if (read_segment(skb, &s) || !s.len)
		return;
	if (rec->stored)
		pend = bpf_map_lookup_elem(&pending, &cookie);
	else
		pend = bpf_map_lookup_elem(&scratch, &zero);
	if (!pend)
		return;
	if (!rec->stored)
		pend->have = 0;
	next = rec->rcv_start + pend->have;
	skip = next - s.seq; /* new bytes start this far into the payload (mod 2^32) */
	if ((__s32)skip < 0) {
		count(PPBPF_CNT_OUT_OF_ORDER);
		return;
	}
	if (skip >= s.len || pend->have >= PPBPF_MAX_HEADER) {
		count(PPBPF_CNT_RETRANSMIT);
		return;
	}
	n = s.len - skip;
	if (n > PPBPF_MAX_HEADER - pend->have)
		n = PPBPF_MAX_HEADER - pend->have;
	if (copy_payload(skb, s.off + skip, pend->buf.data, pend->have, n))
		return;
	pend->have += n;
	count(PPBPF_CNT_SEGMENTS);
	if (judge(sk, rec, pend, cookie)) {
		if (!rec->stored)
			keep_pending(rec, pend, cookie);
		else
			rec->stored = pend->have;
	} else if (rec->stored) {
		bpf_map_delete_elem(&pending, &cookie);
		rec->stored = 0;
	}
}

SEC("cgroup_skb/ingress")
int ppbpf_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct ppbpf_sk *rec;

	/* Untracked traffic leaves here: its local port has no policy. */
	if (!sk || !port_bit(&port_bits, sk->src_port))
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return 1;
	if (sk->state == BPF_TCP_LISTEN) {
		on_listener_segment(skb);
		return 1;
	}
	rec = bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0);
	if (rec && rec->info.state == PPBPF_STATE_PENDING)
		on_stream_segment(skb, sk, rec);
	return 1; /* annotate mode: every packet passes */
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
	__u8 peer[16] = {};
	int v4;

	if (sk->state != BPF_TCP_ESTABLISHED && sk->state != BPF_TCP_SYN_RECV)
		return 0;
	if (!bpf_map_lookup_elem(&ports, &port))
		return 0;
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
