/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Ingress on a tracked socket: the segments of its stream while its header
 * is pending (placed by assemble.h's rules, judged under the live policy),
 * and a rejected socket's, which never reach the application.
 */
#ifndef PPBPF_LIB_STREAM_H
#define PPBPF_LIB_STREAM_H

#include <bpf/bpf_core_read.h>
#include "consts.h"
#include "maps.h"
#include "ordering.h"
#include "pending.h"
#include "policy.h"
#include "segment.h"
#include "stats.h"
#include "verdict.h"

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
	return record_verdict(sk, rec, pend, pend->l.have, apply_policy(rc, &h, pol->flags), &h, pol->flags);
}

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
 * Has the application closed the socket (SOCK_DEAD: an orphan, which nothing
 * will read)? A socket in the accept queue has no file yet either, but is
 * not dead: its bytes are still held.
 */
static __always_inline int closed_by_application(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	return tp && (BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.__sk_common.skc_flags) & (1UL << SOCK_DEAD));
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
	if (closed_by_application(sk)) {
		/* Held, its bytes would keep the peer's FIN out until tcp_fin_timeout; TCP resets a closed socket that gets data. */
		count(PPBPF_CNT_CLOSED_UNREAD);
		return PASS;
	}
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

/* Payload that comes before the socket's record is ready is dropped (TCP resends it); an ACK passes. */
static __always_inline int hold_until_set_up(struct __sk_buff *skb)
{
	struct segment s;

	if (!read_segment(skb, &s) && !s.len)
		return PASS; /* an ACK: no stream bytes */
	count(PPBPF_CNT_BEFORE_SETUP);
	return DROP;
}

/*
 * A segment of a socket that had no record when looked up, in tcp_state read
 * before that lookup. sockops makes the record as the child leaves SYN_RECV
 * (tcp_init_transfer() runs before the state becomes ESTABLISHED), but the
 * child is found by segments from the moment it is made: a data segment
 * handled on another CPU meanwhile (the ACK that made the child still in a
 * busy CPU's softirq) would pass unjudged. So while the child is SYN_RECV
 * and sockops will track it, payload is dropped, and resent. The state is
 * read first because the record may be made between the two reads: a
 * socket seen ESTABLISHED before its record was looked up for is one
 * sockops left alone (or one from before the attach), and its bytes pass.
 */
static __always_inline int on_unset_segment(struct __sk_buff *skb, struct bpf_sock *sk, __u32 tcp_state)
{
	if (tcp_state != BPF_TCP_SYN_RECV || !will_be_tracked(sk))
		return PASS;
	return hold_until_set_up(skb);
}

/* sk_user_data holds a sockmap's psock, tagged with this bit (include/net/sock.h). */
#define SK_USER_DATA_PSOCK 4UL

/* Has the application put the socket in a sockmap? */
static __always_inline int in_sockmap(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	return tp && ((unsigned long)BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_user_data) & SK_USER_DATA_PSOCK);
}

/*
 * A segment that reaches a socket of a transparent port, its header taken
 * out at tc already: passed, but for a rejected socket's (none may be read).
 * A socket its application put in a sockmap is rejected then: the sockmap
 * receive path corrupts streams under loss, with or without a shift.
 */
static __always_inline int on_shifted_socket_segment(struct bpf_sock *sk)
{
	struct ppbpf_sk *rec;

	if (sk->state == BPF_TCP_LISTEN)
		return PASS;
	rec = bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0);
	if (!rec)
		return PASS;
	if (READ_ONCE(rec->info.state) == PPBPF_STATE_ERROR) {
		count(PPBPF_CNT_DROPPED);
		return DROP;
	}
	if (!in_sockmap(sk))
		return PASS;
	if (__sync_val_compare_and_swap(&rec->revoked, 0, 1) == 0) {
		count(PPBPF_CNT_T_SOCKMAP);
		reject(rec, PPBPF_E_SOCKMAP); /* `ppbpf run` logs it, and its sweep resets the socket */
	}
	count(PPBPF_CNT_DROPPED);
	return DROP;
}

#endif /* PPBPF_LIB_STREAM_H */
