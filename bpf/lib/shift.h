/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Transparent mode at tc: the header is taken out of the stream by shifting
 * sequence numbers, never by trimming stream bytes.
 *
 * Client to server, every segment's seq is lowered by the flow's `off`: the
 * header bytes taken in so far, then the header's length L. The header's
 * bytes then lie below the server's rcv_nxt: its TCP takes them for bytes it
 * already has, acknowledges them and never delivers them; a segment that
 * straddles the end of the header is a partly old segment, whose old part
 * TCP skips itself. Server to client, the ack and every SACK edge are raised
 * by `off`. Only header fields change, so checksums are updated
 * incrementally, and GSO/GRO packets need nothing special.
 *
 * The handshake is held until the header is judged: its last ACK is dropped,
 * so the server's socket stays a request socket and accept() cannot return
 * the connection early. Header segments shifted whole are answered by the
 * request socket with an ACK (out of window), which the client takes for
 * its bytes; the segment that completes the header completes the handshake:
 * shifted, if payload follows the header in it (it still reaches rcv_nxt),
 * or turned into a bare ACK, if it ends with the header (tcp_check_req drops
 * a segment wholly below rcv_nxt). A rejected or late header resets the
 * handshake: the client's segment is passed on with SYN set, which makes
 * tcp_check_req reset it (embryonic_reset) and drop the request.
 */
#ifndef PPBPF_LIB_SHIFT_H
#define PPBPF_LIB_SHIFT_H

#include <bpf/bpf_core_read.h>
#include "consts.h"
#include "handoff.h"
#include "trace.h"
#include "maps.h"
#include "ordering.h"
#include "policy.h"
#include "segment.h"
#include "stats.h"

/* ---- rewriting TCP header fields ------------------------------------------------------------- */

/* Write a 32-bit TCP field (host order values) and update the checksum for it. */
static __always_inline int set_tcp32(struct __sk_buff *skb, const struct segment *s, __u32 at, __u32 old, __u32 new)
{
	__u32 o = bpf_htonl(old), n = bpf_htonl(new);

	if (bpf_skb_store_bytes(skb, s->tcp_off + at, &n, sizeof(n), 0))
		return -1;
	/* a header field: for CHECKSUM_PARTIAL (the stack fills the sum in later) this is a no-op */
	return bpf_l4_csum_replace(skb, s->tcp_off + TCP_CSUM_AT, o, n, sizeof(n));
}

/* Set TCP flags (TCP_FLAG_* bits of the flags byte) on the segment. */
static __always_inline int set_tcp_flags(struct __sk_buff *skb, const struct segment *s, __u8 bits)
{
	__u8 w[2];
	__u16 old, new;

	if (bpf_skb_load_bytes(skb, s->tcp_off + TCP_FLAGS_AT, w, sizeof(w)))
		return -1;
	__builtin_memcpy(&old, w, 2);
	w[1] |= bits;
	__builtin_memcpy(&new, w, 2);
	if (bpf_skb_store_bytes(skb, s->tcp_off + TCP_FLAGS_AT, w, sizeof(w), 0))
		return -1;
	return bpf_l4_csum_replace(skb, s->tcp_off + TCP_CSUM_AT, old, new, sizeof(new));
}

/* Lower a client segment's seq by `by`: TC_NEXT, or TC_DROP if the packet could not be written. */
static __always_inline int shift_seq(struct __sk_buff *skb, const struct segment *s, __u32 by)
{
	if (!by)
		return TC_NEXT;
	return set_tcp32(skb, s, TCP_SEQ_AT, s->raw_seq, s->raw_seq - by) ? TC_DROP : TC_NEXT;
}

/* Where a sum over the bytes a segment loses is (a bpf_loop callback over 256-byte chunks). */
struct sum_state {
	const __u8 *buf; /* PPBPF_MAX_HEADER + PPBPF_COPY_CHUNK bytes */
	__u32 left;      /* bytes still to add, a multiple of 4 */
	__u32 at;
	__s64 sum;       /* bpf_csum_diff's running value, or < 0 on an error */
};

static long sum_chunk(__u64 idx, void *ctx)
{
	struct sum_state *st = ctx;
	__u32 n = st->left > PPBPF_COPY_CHUNK ? PPBPF_COPY_CHUNK : st->left;

	(void)idx;
	if (!n || st->sum < 0)
		return 1;
	n = ((n - 1) & (PPBPF_COPY_CHUNK - 1)) + 1; /* 1..CHUNK for the verifier */
	/* "from" bytes are subtracted: the result takes them out of a checksum */
	st->sum = bpf_csum_diff((__be32 *)(st->buf + (st->at & (PPBPF_MAX_HEADER - 1))), n, NULL, 0,
				(__wsum)st->sum);
	st->at += n;
	st->left -= n;
	return 0;
}

/*
 * Make a segment whose payload is all header bytes a bare ACK at server seq
 * `seq`: the payload is cut off, the IP length, the pseudo header's length and
 * the checksum follow. Its FIN, if it has one, stays. Returns 0 or -1.
 */
static __noinline int cut_to_ack(struct __sk_buff *skb, const struct segment *s, __u32 seq)
{
	__u32 zero = 0, n = s->len, n4 = (s->len + 3) & ~3U, tcp_len = s->doff * 4;
	struct ppbpf_early *sc = bpf_map_lookup_elem(&tc_scratch, &zero);
	struct sum_state st = {};
	__u16 ip_old, ip_new;

	if (!sc || !n || n > PPBPF_MAX_HEADER)
		return -1;
	/* the bytes to take out, copied, with zeros to a multiple of 4 (the sum pads odd lengths so) */
	if (copy_payload(skb, s->off, sc->bytes.buf.data, 0, n))
		return -1;
	for (int i = 0; i < 3; i++)
		sc->bytes.buf.data[(n + i) & (PPBPF_MAX_HEADER + PPBPF_COPY_CHUNK - 1)] = 0;
	st.buf = sc->bytes.buf.data;
	st.left = n4;
	bpf_loop(PPBPF_COPY_CALLS + 1, sum_chunk, &st, 0);
	if (st.sum < 0 || st.left)
		return -1;
	if (bpf_l4_csum_replace(skb, s->tcp_off + TCP_CSUM_AT, 0, st.sum, 0))
		return -1;
	/* the pseudo header's TCP length: a no-op where the stack already verified the packet */
	if (bpf_l4_csum_replace(skb, s->tcp_off + TCP_CSUM_AT, bpf_htons(tcp_len + n), bpf_htons(tcp_len),
				CSUM_PSEUDO | 2))
		return -1;
	if (set_tcp32(skb, s, TCP_SEQ_AT, s->raw_seq, seq))
		return -1;
	if (s->v4) {
		ip_old = bpf_htons(s->ip_len + tcp_len + n);
		ip_new = bpf_htons(s->ip_len + tcp_len);
		if (bpf_skb_store_bytes(skb, TC_L3 + 2, &ip_new, 2, 0) ||
		    bpf_l3_csum_replace(skb, TC_L3 + 10, ip_old, ip_new, 2))
			return -1;
	} else {
		ip_new = bpf_htons(s->ip_len - 40 + tcp_len); /* payload length: what follows the fixed header */
		if (bpf_skb_store_bytes(skb, TC_L3 + 4, &ip_new, 2, 0))
			return -1;
	}
	return bpf_skb_change_tail(skb, s->off, 0) ? -1 : 0;
}

/* ---- TCP options ----------------------------------------------------------------------------- */

#define TCP_OPTS_MAX 40

/* A segment's TCP options, copied (len bytes). */
struct tcp_opts {
	__u8 b[64]; /* a masked index stays inside */
	__u32 len;
};

static __always_inline int read_opts(struct __sk_buff *skb, const struct segment *s, struct tcp_opts *o)
{
	o->len = s->doff * 4 > TCP_OPTS_AT ? s->doff * 4 - TCP_OPTS_AT : 0;
	if (!o->len)
		return 0;
	if (o->len > TCP_OPTS_MAX)
		return -1;
	return bpf_skb_load_bytes(skb, s->tcp_off + TCP_OPTS_AT, o->b, ((o->len - 1) & 63) + 1);
}

/*
 * Where option `kind` starts in o, or -1. A global function: the verifier
 * checks its walk once, not at every call.
 */
__attribute__((noinline)) int ppbpf_find_opt(const struct tcp_opts *o, int kind)
{
	__u32 i = 0;

	PPBPF_ARGS_NONNULL(o, -1);
	for (int n = 0; n < TCP_OPTS_MAX; n++) {
		__u8 k, len;

		if (i >= o->len || i >= TCP_OPTS_MAX)
			break;
		k = o->b[i & 63];
		if (k == 0) /* end of options */
			break;
		if (k == 1) { /* no-op */
			i++;
			continue;
		}
		if (k == kind)
			return (int)i;
		len = o->b[(i + 1) & 63];
		if (len < 2)
			break;
		i += len;
	}
	return -1;
}

/* ---- server to client ------------------------------------------------------------------------ */

/* Options that are only the timestamp as Linux aligns it (NOP, NOP, TS): most segments, and no SACK. */
static __always_inline int only_timestamps(const struct tcp_opts *o)
{
	return o->len == 12 && o->b[0] == 1 && o->b[1] == 1 && o->b[2] == TCPOPT_TIMESTAMP;
}

/* Raise the ack and every SACK edge of a server segment by off. */
static __noinline int raise_acks(struct __sk_buff *skb, const struct segment *s, __u32 off)
{
	struct tcp_opts o = {};
	__u32 blocks, olen;
	int at;

	if (set_tcp32(skb, s, TCP_ACK_AT, s->ack, s->ack + off))
		return TC_DROP;
	if (s->doff <= 5 || read_opts(skb, s, &o) || only_timestamps(&o))
		return TC_NEXT;
	at = ppbpf_find_opt(&o, TCPOPT_SACK);
	if (at < 0)
		return TC_NEXT;
	olen = o.b[(at + 1) & 63];
	blocks = olen >= 2 ? (olen - 2) / 8 : 0;
	for (int b = 0; b < 4; b++) { /* at most 4 blocks fit in 40 bytes */
		__u32 edge = at + 2 + b * 8;

		if ((__u32)b >= blocks || edge + 8 > o.len)
			break;
		for (int e = 0; e < 2; e++) {
			__u32 p = (edge + e * 4) & 63, v;

			v = (__u32)o.b[p] << 24 | (__u32)o.b[(p + 1) & 63] << 16 | (__u32)o.b[(p + 2) & 63] << 8 |
			    o.b[(p + 3) & 63];
			if (set_tcp32(skb, s, TCP_OPTS_AT + p, v, v + off))
				return TC_DROP;
		}
	}
	return TC_NEXT;
}

/* The parsed header a flow holds once judged. */
static __always_inline const struct ppbpf_hdr *flow_hdr(const struct ppbpf_flow *f)
{
	return (const struct ppbpf_hdr *)f->hdr;
}

/* A judged header's verdict into its flow, where sockops takes it with the child. */
static __always_inline void judge_flow(struct ppbpf_flow *f, int rc, const struct ppbpf_hdr *h, __u32 have)
{
	f->rc = rc;
	f->have = have;
	__builtin_memcpy(f->hdr, h, sizeof(f->hdr));
}

/* Does sockops need the header's bytes too (in flow_hdrs), not only its verdict? Only for its TLVs. */
static __always_inline int keeps_bytes(int rc, const struct ppbpf_hdr *h)
{
	return rc > 0 && h->tlv_len;
}

/* Refuse a flow: its header is rejected, or late. Its header entry goes; the flow stays to reset it. */
static __always_inline void refuse_flow(struct ppbpf_flow *f, const struct ppbpf_early_key *key, int error)
{
	f->error = error;
	WRITE_ONCE(f->state, FLOW_REJECTED);
	bpf_map_delete_elem(&flow_hdrs, key);
	count_rejection(error);
	trace_flow_refused(key, error);
}

/*
 * A handshake whose header did not come within the timeout, seen as its
 * SYN-ACK is sent again (the flow is locked). An optional port with nothing
 * taken in makes it plain: the client's answer completes the handshake,
 * unshifted (a server-first protocol with no header). Else it is refused:
 * the client's answer resets it.
 */
static __always_inline void flow_timed_out(struct ppbpf_flow *f, const struct ppbpf_early_key *key, __u16 port)
{
	struct ppbpf_port_policy *pol = bpf_map_lookup_elem(&ports, &port);
	struct ppbpf_hdr none = {};

	if (!pol || !(pol->flags & PPBPF_PORT_OPTIONAL) || f->off) {
		refuse_flow(f, key, PPBPF_E_TIMEOUT);
		return;
	}
	judge_flow(f, PPBPF_E_NOT_PROXY, &none, 0); /* sockops records it plain */
	count(PPBPF_CNT_TIMEOUT_PLAIN);
	WRITE_ONCE(f->state, FLOW_SHIFTING); /* by 0: as it is */
}

/* The key of a segment the server sends (the client is the peer; as read, "peer" is the server's end). */
static __always_inline void server_segment_key(struct ppbpf_early_key *key, const struct segment *s)
{
	early_key_of(key, &s->local, &s->peer);
}

/*
 * A segment from a transparent port: its acks follow the shift. A SYN-ACK
 * resent for a handshake whose header is late marks it refused: the
 * client's answer resets it.
 */
static __noinline int on_server_segment(struct __sk_buff *skb, const struct segment *s)
{
	struct ppbpf_early_key key = {};
	struct ppbpf_flow *f;
	__u32 off;

	server_segment_key(&key, s);
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f || !s->has_ack)
		return TC_NEXT;
	if (s->syn) {
		if (f->deadline_ns && bpf_ktime_get_ns() > f->deadline_ns &&
		    __sync_val_compare_and_swap(&f->busy, 0, 1) == 0) { /* not while a header segment is taken in */
			if (READ_ONCE(f->state) == FLOW_CAPTURING)
				flow_timed_out(f, &key, s->peer.port);
			WRITE_ONCE(f->busy, 0);
		}
		return TC_NEXT;
	}
	off = READ_ONCE(f->off);
	return off ? raise_acks(skb, s, off) : TC_NEXT;
}

/* ---- client to server ------------------------------------------------------------------------ */

/* The attachment's cgroup (its id and depth; depth 0: the root, every socket), set by the loader. */
const volatile __u64 scope_cgroup_id = 0;
const volatile __u32 scope_cgroup_level = 0;

/*
 * Is this socket in the attachment's cgroup or under it? Its cgroup and
 * those above it, read through BTF (tc has no bpf_sk_ancestor_cgroup_id).
 */
static __always_inline int sock_in_scope(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct cgroup *cg;

	if (!tp)
		return 0;
	cg = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup);
	for (int i = 0; i < 32 && cg; i++) {
		if (BPF_CORE_READ(cg, kn, id) == scope_cgroup_id)
			return 1;
		if (BPF_CORE_READ(cg, level) <= (int)scope_cgroup_level)
			return 0;
		cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent); /* self is a cgroup's first member */
	}
	return 0;
}

/* Does the SYN go to a listener of the attachment's cgroup (whose sockets sockops follows)? */
static __always_inline int listener_in_scope(struct __sk_buff *skb, const struct segment *s)
{
	struct bpf_sock_tuple t = {};
	__u32 tlen = sock_tuple(&t, s->v4, &s->peer, &s->local);
	struct bpf_sock *sk;
	int in;

	if (!scope_cgroup_level)
		return 1;
	sk = bpf_sk_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0; /* no listener: the SYN is answered with a reset */
	in = sock_in_scope(sk);
	bpf_sk_release(sk);
	return in;
}

/*
 * A segment of a refused handshake: passed unshifted with SYN set, so that
 * the request socket resets the client and goes (a reset passes as it is).
 * Where the request is gone already, the listener answers the ACK with a
 * reset too.
 */
static __always_inline int reset_handshake(struct __sk_buff *skb, const struct segment *s)
{
	if (s->rst || !s->has_ack)
		return TC_NEXT;
	count(PPBPF_CNT_T_RESETS);
	return set_tcp_flags(skb, s, 0x02 /* SYN */) ? TC_DROP : TC_NEXT;
}

/* A SYN with an option that signs sequence numbers (TCP-MD5, TCP-AO): shifting would break it. */
static __always_inline int signed_syn(struct __sk_buff *skb, const struct segment *s)
{
	struct tcp_opts o = {};

	if (s->doff <= 5)
		return 0;
	if (read_opts(skb, s, &o))
		return 1; /* options that cannot be read: refused as well */
	return ppbpf_find_opt(&o, TCPOPT_MD5SIG) >= 0 || ppbpf_find_opt(&o, TCPOPT_AO) >= 0;
}

/*
 * A SYN to a transparent port: a new flow, for a trusted client (others pass
 * untouched, as the policy leaves them: plain, or reset by sockops). What
 * cannot be shifted is refused: data in the SYN (fast open), a signed
 * segment, a full flow table.
 */
static __noinline int on_client_syn(struct __sk_buff *skb, const struct segment *s,
					 const struct ppbpf_early_key *key)
{
	struct ppbpf_port_policy *pol = bpf_map_lookup_elem(&ports, &s->local.port);
	struct ppbpf_flow *old, f = {};

	if (!pol || !(pol->flags & PPBPF_PORT_TRANSPARENT) || !trusted(s->local.port, s->v4, s->peer.addr) ||
	    !listener_in_scope(skb, s))
		return TC_NEXT;
	if (s->len) {
		count(PPBPF_CNT_T_FASTOPEN);
		return TC_DROP; /* the client sends its SYN again without data */
	}
	if (signed_syn(skb, s)) {
		count(PPBPF_CNT_T_SIGNED);
		return TC_DROP;
	}
	f.start = s->seq;
	f.rc = PPBPF_E_INCOMPLETE;
	f.born_ns = bpf_ktime_get_ns();
	if (pol->timeout_ms)
		f.deadline_ns = f.born_ns + pol->timeout_ms * NSEC_PER_MSEC;
	if (!bpf_map_update_elem(&flows, key, &f, BPF_NOEXIST))
		return TC_NEXT; /* a new 4-tuple: one lookup, not two */
	old = bpf_map_lookup_elem(&flows, key);
	if (old && READ_ONCE(old->state) == FLOW_DEAD)
		return TC_DROP; /* the sweep is removing the 4-tuple's last flow: the client sends its SYN again */
	if (old && old->start == s->seq)
		return TC_NEXT; /* the SYN again */
	if (old && READ_ONCE(old->state) == FLOW_SHIFTING && !READ_ONCE(old->closed_ns))
		return TC_NEXT; /* a SYN on a live flow's 4-tuple: TCP answers it; the flow stays */
	if (bpf_map_update_elem(&flows, key, &f, BPF_ANY)) {
		count(PPBPF_CNT_T_NO_ROOM);
		return TC_DROP;
	}
	return TC_NEXT;
}

/* Where a header segment goes, once its bytes are taken in (the flow is locked). */
static __noinline int header_segment(struct __sk_buff *skb, const struct segment *s,
					  const struct ppbpf_early_key *key, struct ppbpf_flow *f)
{
	struct ppbpf_port_policy *pol = bpf_map_lookup_elem(&ports, &s->local.port);
	__u32 rel = s->seq - f->start, zero = 0, had;
	struct ppbpf_early *e;
	int rc, stored = 1;

	if (!pol || !(pol->flags & PPBPF_PORT_TRANSPARENT)) {
		refuse_flow(f, key, PPBPF_E_UNTRUSTED); /* the port left transparent mode mid-header */
		return reset_handshake(skb, s);
	}
	if (f->deadline_ns && bpf_ktime_get_ns() > f->deadline_ns) {
		flow_timed_out(f, key, s->local.port); /* as a SYN-ACK sent again would find it */
		if (READ_ONCE(f->state) == FLOW_SHIFTING)
			return TC_NEXT; /* plain (an optional port, nothing taken in): as it is */
		return reset_handshake(skb, s);
	}
	had = f->off;
	if ((__s32)(rel - had) > 0) { /* after a gap: the client sends it again */
		count(PPBPF_CNT_HELD);
		return TC_DROP;
	}
	if (!s->len || rel + s->len <= had) {
		if (!s->len && !s->fin) {
			count(PPBPF_CNT_T_HELD_ACKS); /* the handshake's ACK (or a window update): held */
			return TC_DROP;
		}
		if (!s->len) /* a FIN before the header is whole: never passed, the timeout resets it */
			return TC_DROP;
		count(PPBPF_CNT_RETRANSMIT);
		return shift_seq(skb, s, had); /* bytes taken in already: old, the request acknowledges them */
	}
	e = bpf_map_lookup_elem(&flow_hdrs, key);
	if (!e) {
		e = bpf_map_lookup_elem(&tc_scratch, &zero);
		if (!e)
			return TC_DROP;
		e->start = f->start;
		e->ack = s->ack;
		e->born_ns = f->born_ns;
		e->busy = 0;
		__builtin_memset(&e->bytes.l, 0, sizeof(e->bytes.l));
		stored = 0;
	}
	e->bytes.l.have = had;
	count(PPBPF_CNT_SEGMENTS);
	rc = append_and_parse(skb, s, pol, e, had - rel); /* in sequence: past a gap it was dropped above */
	e->rc = rc;
	if (rc == PPBPF_E_INCOMPLETE) {
		count(PPBPF_CNT_PENDING);
		if (!stored && bpf_map_update_elem(&flow_hdrs, key, e, BPF_ANY)) {
			refuse_flow(f, key, PPBPF_E_NO_ROOM);
			return reset_handshake(skb, s);
		}
		WRITE_ONCE(f->off, e->bytes.l.have);
		return shift_seq(skb, s, e->bytes.l.have); /* wholly old now: acknowledged, the handshake held */
	}
	/* (an accepted header is counted by sockops, as it records it) */
	if (rc <= 0 && !(rc == PPBPF_E_NOT_PROXY && (pol->flags & PPBPF_PORT_OPTIONAL))) {
		count_result(rc, &e->hdr);
		refuse_flow(f, key, rc);
		return reset_handshake(skb, s);
	}
	if (rc <= 0 && had) { /* no header after all, but bytes were taken out already: they cannot come back */
		count(PPBPF_CNT_T_LATE_PLAIN);
		refuse_flow(f, key, rc);
		return reset_handshake(skb, s);
	}
	judge_flow(f, rc, &e->hdr, e->bytes.l.have);
	if (keeps_bytes(rc, &e->hdr)) {
		if (!stored && bpf_map_update_elem(&flow_hdrs, key, e, BPF_ANY)) { /* its TLVs, for sockops */
			refuse_flow(f, key, PPBPF_E_NO_ROOM);
			return reset_handshake(skb, s);
		}
	} else if (stored) {
		bpf_map_delete_elem(&flow_hdrs, key); /* the flow holds all sockops needs (e is not read again) */
	}
	f->off = rc > 0 ? flow_hdr(f)->header_len : 0;
	barrier();
	WRITE_ONCE(f->state, FLOW_SHIFTING);
	count(PPBPF_CNT_T_FLOWS);
	if (rc > 0 && rel + s->len <= f->off) /* it ends with the header: a bare ACK completes the handshake */
		return cut_to_ack(skb, s, f->start) ? TC_DROP : TC_NEXT;
	return shift_seq(skb, s, f->off);
}

/* A segment from a client to a transparent port. */
static __always_inline int on_client_segment(struct __sk_buff *skb, const struct segment *s)
{
	struct ppbpf_early_key key = {};
	struct ppbpf_flow *f;
	__u32 state;
	int verdict;

	early_key_of(&key, &s->peer, &s->local);
	if (s->syn && !s->has_ack)
		return on_client_syn(skb, s, &key);
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		return TC_NEXT;
	state = READ_ONCE(f->state);
	if (state == FLOW_SHIFTING) {
		__u32 off;

		barrier();
		off = READ_ONCE(f->off); /* after the state: it was written before it */

		/* header bytes sent again after the handshake's ACK was lost: a bare ACK, as the first time */
		if (off && s->len && s->seq - f->start + s->len <= off && !f->cookie)
			return cut_to_ack(skb, s, f->start) ? TC_DROP : TC_NEXT;
		return shift_seq(skb, s, off);
	}
	if (state == FLOW_REJECTED)
		return reset_handshake(skb, s);
	if (s->rst)
		return TC_NEXT; /* the request socket goes; the flow is swept */
	if (__sync_val_compare_and_swap(&f->busy, 0, 1)) {
		count(PPBPF_CNT_BUSY);
		return TC_DROP;
	}
	if (READ_ONCE(f->state) != FLOW_CAPTURING) /* judged on another CPU meanwhile: sent again */
		verdict = TC_DROP;
	else
		verdict = header_segment(skb, s, &key, f);
	barrier();
	WRITE_ONCE(f->busy, 0);
	return verdict;
}

/* ---- the hooks ------------------------------------------------------------------------------- */

/*
 * A segment as tc sees it. The payload's length comes from the IP header:
 * before IP takes it in, a short frame may still carry Ethernet padding.
 * (A length of 0 is a GSO packet's over 64 KiB: skb->len counts then.)
 */
static __always_inline int read_tc_segment(struct __sk_buff *skb, struct segment *s)
{
	__u16 len16;
	__u32 ip_total;

	if (read_segment_at(skb, s, TC_L3))
		return -1;
	if (bpf_skb_load_bytes(skb, TC_L3 + (s->v4 ? 2 : 4), &len16, sizeof(len16)))
		return -1;
	ip_total = bpf_ntohs(len16) + (s->v4 ? 0 : 40);
	if (len16 && ip_total >= s->ip_len + s->doff * 4 && ip_total - s->ip_len - s->doff * 4 < s->len)
		s->len = ip_total - s->ip_len - s->doff * 4;
	return 0;
}

/* Is the segment's port (local for a client's, the source for a server's) in transparent mode? */
static __always_inline int shifted_port(__u16 port)
{
	return port_bit(&shift_bits, port);
}

/*
 * A 32-bit field of skb (data, data_end, protocol) as one load at a constant
 * offset. (Written plainly beside read_segment_direct's reads, clang keeps
 * the field's address and reuses it, a moved context pointer, which the
 * verifier refuses.)
 */
#define ctx_u32_ptr(skb, off)                                                              \
	({                                                                                 \
		void *__p;                                                                 \
		asm volatile("%0 = *(u32 *)(%1 + %2)" : "=r"(__p) : "r"(skb), "i"(off)); \
		__p;                                                                       \
	})

/*
 * The ports of a segment, read in place (IPv4, or IPv6 with TCP next), before
 * anything else: most packets tc sees are not transparent mode's, and leave
 * after this. Returns 0, or -1 where they are not at hand (read in full then).
 */
static __always_inline int peek_ports(struct __sk_buff *skb, __u16 *src, __u16 *dst)
{
	void *data = ctx_u32_ptr(skb, offsetof(struct __sk_buff, data)) + TC_L3;
	void *end = ctx_u32_ptr(skb, offsetof(struct __sk_buff, data_end));
	__u32 proto = (__u32)(long)ctx_u32_ptr(skb, offsetof(struct __sk_buff, protocol));
	__u16 *ports;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
			return -1;
		ports = data + ((ip->ihl * 4) & 63);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		ports = (void *)(ip6 + 1);
	} else {
		return -1;
	}
	if ((void *)(ports + 2) > end)
		return -1;
	*src = bpf_ntohs(ports[0]);
	*dst = bpf_ntohs(ports[1]);
	return 0;
}

/*
 * tc ingress: a client's segments; on loopback, where one hook sees both
 * directions, the server's too.
 */
static __always_inline int tc_ingress(struct __sk_buff *skb)
{
	struct segment s;
	__u16 src, dst;

	if (!peek_ports(skb, &src, &dst) && !shifted_port(dst) && !(skb->ifindex == 1 && shifted_port(src)))
		return TC_NEXT;
	if (read_tc_segment(skb, &s))
		return TC_NEXT;
	if (shifted_port(s.local.port))
		return on_client_segment(skb, &s);
	if (skb->ifindex == 1 /* loopback */ && shifted_port(s.peer.port))
		return on_server_segment(skb, &s);
	return TC_NEXT;
}

/* tc egress: the server's segments (as read, "peer" is their destination). */
static __always_inline int tc_egress(struct __sk_buff *skb)
{
	struct segment s;
	__u16 src, dst;

	if (!peek_ports(skb, &src, &dst) && !shifted_port(src))
		return TC_NEXT;
	if (read_tc_segment(skb, &s) || !shifted_port(s.peer.port))
		return TC_NEXT;
	return on_server_segment(skb, &s);
}

/* ---- sockops, with the child ----------------------------------------------------------------- */

/*
 * A connection established on a transparent port: its record from its
 * flow's verdict, marked removed (the library must not consume the header
 * again). A trusted connection without a judged flow (its SYN came before
 * tc was attached) has its header in the stream: rejected.
 */
static __always_inline void take_flow(struct bpf_sock_ops *skops, struct bpf_sock *sk, const struct ppbpf_conn *c,
				      struct ppbpf_sk *rec)
{
	struct ppbpf_early_key key = {};
	struct ppbpf_early *e = NULL;
	struct ppbpf_flow *f;
	int rc;

	early_key_of(&key, &c->peer, &c->local);
	f = bpf_map_lookup_elem(&flows, &key);
	rc = f ? f->rc : PPBPF_E_INCOMPLETE;
	if (f && keeps_bytes(rc, flow_hdr(f))) {
		e = bpf_map_lookup_elem(&flow_hdrs, &key);
		if (e && e->start != f->start)
			e = NULL; /* an older flow's, of the same 4-tuple */
	}
	if (!f || READ_ONCE(f->state) != FLOW_SHIFTING || f->start != skops->rcv_nxt || rc == PPBPF_E_INCOMPLETE ||
	    (keeps_bytes(rc, flow_hdr(f)) && !e)) {
		if (claim_verdict(rec))
			reject(rec, PPBPF_E_UNSHIFTED);
		bpf_map_delete_elem(&flow_hdrs, &key);
		return;
	}
	f->cookie = rec->info.cookie;
	f->family = rec->af;
	if (rc > 0)
		rec->info.flags |= PPBPF_INFO_REMOVED;
	record_verdict(sk, rec, e ? &e->bytes : NULL, f->have, rc, flow_hdr(f), rec->port_flags);
	if (e)
		bpf_map_delete_elem(&flow_hdrs, &key);
}

/*
 * A transparent socket closes, from old_state. Where it closed first
 * (FIN_WAIT, CLOSING), a TIME_WAIT socket stays that still takes the
 * client's segments: the flow is kept, and swept after TIME_WAIT. Else
 * (the client closed first, or a reset) no segment of it can come: it goes.
 */
static __always_inline void flow_closed(const struct ppbpf_sk *rec, __u32 old_state)
{
	struct ppbpf_early_key key = {};
	struct ppbpf_flow *f;

	early_key_of(&key, &rec->peer, &rec->local);
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f || f->cookie != rec->info.cookie)
		return;
	if (old_state == BPF_TCP_FIN_WAIT1 || old_state == BPF_TCP_FIN_WAIT2 || old_state == BPF_TCP_CLOSING ||
	    old_state == BPF_TCP_TIME_WAIT)
		WRITE_ONCE(f->closed_ns, bpf_ktime_get_ns());
	else
		bpf_map_delete_elem(&flows, &key);
}

/* ---- the sweep (run by `ppbpf run`) ---------------------------------------------------------- */

/* How long a closed flow is kept: TIME_WAIT (60 s) and a margin. */
#define FLOW_TIME_WAIT_NS (65ULL * 1000 * NSEC_PER_MSEC)
/* How long a handshake that never completed is kept: longer than its SYN-ACK retries (~63 s). */
#define FLOW_HANDSHAKE_NS (75ULL * 1000 * NSEC_PER_MSEC)

/*
 * One flow of the sweep (a bpf_for_each_map_elem callback): one closed for
 * longer than TIME_WAIT, or one whose handshake never completed, goes. It is
 * claimed first (DEAD, a compare-and-swap on the live entry), so that a SYN
 * that reuses its 4-tuple meanwhile is dropped and sent again, never given
 * an entry the sweep then deletes.
 */
static long sweep_flow(struct bpf_map *map, const struct ppbpf_early_key *key, struct ppbpf_flow *f, void *ctx)
{
	__u64 now = bpf_ktime_get_ns(), closed = READ_ONCE(f->closed_ns);
	__u32 state = READ_ONCE(f->state);
	__u32 *removed = ctx;
	int old;

	if (closed)
		old = (__s64)(now - closed) > (__s64)FLOW_TIME_WAIT_NS;
	else
		old = !READ_ONCE(f->cookie) && (__s64)(now - f->born_ns) > (__s64)FLOW_HANDSHAKE_NS;
	if (!old || state == FLOW_DEAD || __sync_val_compare_and_swap(&f->state, state, FLOW_DEAD) != state)
		return 0;
	bpf_map_delete_elem(&flow_hdrs, key);
	if (!bpf_map_delete_elem(map, key))
		(*removed)++;
	return 0;
}

#endif /* PPBPF_LIB_SHIFT_H */
