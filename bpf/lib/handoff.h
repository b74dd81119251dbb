/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Headers that reach a listener before the child socket exists (deferred
 * accept, data on the handshake's last ACK): judged at the listener into an
 * entry tied to the handshake (`early`, `early_nohs`), which sockops takes
 * with the child.
 */
#ifndef PPBPF_LIB_HANDOFF_H
#define PPBPF_LIB_HANDOFF_H

#include "addr.h"
#include "consts.h"
#include "maps.h"
#include "ordering.h"
#include "pending.h"
#include "policy.h"
#include "segment.h"
#include "stats.h"
#include "verdict.h"

/* The `early` key of a connection: its two ends. */
static __always_inline void early_key_of(struct ppbpf_early_key *k, const struct ppbpf_endpoint *peer,
					 const struct ppbpf_endpoint *local)
{
	k->peer = *peer;
	k->local = *local;
}

/* ---- ingress, at the listener ---------------------------------------------------------------- */

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
	__u32 tlen = sock_tuple(&t, s->v4, &s->peer, &s->local);
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
 * Has the handshake's child been made (or the handshake gone) since
 * handshake_of found its request socket? The child replaces the request
 * socket in the lookup table before its sockops runs.
 */
static __always_inline int handshake_gone(struct __sk_buff *skb, const struct segment *s)
{
	struct bpf_sock_tuple t = {};
	__u32 tlen = sock_tuple(&t, s->v4, &s->peer, &s->local);
	struct bpf_sock *skc = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	int gone;

	if (!skc)
		return 1;
	gone = skc->state != TCP_NEW_SYN_RECV;
	bpf_sk_release(skc);
	return gone;
}

/*
 * Append a segment's bytes from payload offset skip (its new ones) to the
 * header taken in so far in e, up to the port's limit, and parse them.
 * Returns the parse result under the port's policy, or PPBPF_E_NO_ROOM where
 * the copy failed. (Shared with transparent mode's tc side, shift.h.)
 */
static __always_inline int append_and_parse(struct __sk_buff *skb, const struct segment *s,
					    const struct ppbpf_port_policy *pol, struct ppbpf_early *e, __u32 skip)
{
	__u32 max = max_header_of(pol), have = e->bytes.l.have, n = s->len - skip;
	int rc;

	if (n > max - have)
		n = max - have;
	if (copy_payload(skb, s->off + skip, e->bytes.buf.data, have, n))
		return PPBPF_E_NO_ROOM;
	have += n;
	e->bytes.l.have = have;
	e->bytes.l.head_end = (__u16)have;
	rc = ppbpf_parse_max(&e->bytes.buf, have, max, &e->hdr);
	return apply_policy(rc, &e->hdr, pol->flags);
}

/*
 * Take a segment of a handshake's header into e, in sequence from start
 * (listeners keep no runs: nothing is queued before the child exists).
 * Returns what the segment gets; e->rc says the verdict once there is one.
 */
static __always_inline int listener_take(struct __sk_buff *skb, const struct segment *s,
					 const struct ppbpf_port_policy *pol, struct ppbpf_early *e, __u32 start)
{
	__u32 max = max_header_of(pol), have = e->bytes.l.have, skip = start + have - s->seq;
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
	rc = append_and_parse(skb, s, pol, e, skip);
	if (rc == PPBPF_E_NO_ROOM) /* the copy failed */
		return DROP;
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
	early_key_of(&key, &s.peer, &s.local);
	if (!s.len) {
		if (s.rst)
			bpf_map_delete_elem(&early, &key);
		return PASS;
	}
	pol = bpf_map_lookup_elem(&ports, &s.local.port);
	if (!pol)
		return PASS;
	if (!trusted(s.local.port, s.v4, s.peer.addr))
		return pol->flags & PPBPF_PORT_REJECT_UNTRUSTED ? DROP : PASS;
	real = handshake_of(skb, &s, &start);
	entries = real ? (void *)&early : (void *)&early_nohs;
	if (!local_peer_ok(skb, pol, s.v4, &s.local, &s.peer)) {
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
		/*
		 * The ACK may have made the child on another CPU since the
		 * lookup, and its sockops looked for this entry before it was
		 * stored: nothing would take it. The segment then meets the
		 * child (dropped if it was held, and resent; judged there if
		 * it passes: tcp_check_req() finds the request taken).
		 */
		if (real && handshake_gone(skb, &s))
			bpf_map_delete_elem(entries, &key);
	}
	return verdict;
}

/* ---- sockops, with the child ----------------------------------------------------------------- */

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
		if (record_verdict(sk, rec, &e->bytes, e->bytes.l.have, e->rc, &e->hdr, rec->port_flags) == V_HOLD)
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

	early_key_of(&key, &c->peer, &c->local);
	if (!take_early_from(&early, &key, skops, sk, rec))
		take_early_from(&early_nohs, &key, skops, sk, rec);
}

#endif /* PPBPF_LIB_HANDOFF_H */
