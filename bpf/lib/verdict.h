/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * A tracked socket's verdict: claimed once (by ingress or the sweep), then
 * recorded as accepted (the header's fields, its TLVs, the table entry),
 * plain or rejected (an event for `ppbpf run`), with the counters of each
 * result.
 */
#ifndef PPBPF_LIB_VERDICT_H
#define PPBPF_LIB_VERDICT_H

#include <ppbpf/record.h>
#include "maps.h"
#include "ordering.h"
#include "stats.h"
#include "trace.h"

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

/* TLV bytes kept per socket: the configured cap, at most PPBPF_TLV_MAX. */
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

	if (n > cap) {
		n = cap;
		rec->info.flags |= PPBPF_INFO_TLV_TRUNCATED;
		count(PPBPF_CNT_TLV_TRUNCATED);
	}
	if (!n || !pend)
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

/* The record's state into the socket's table entry, and the header's summary once accepted. */
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
	orig_endpoints(&rec->info, &c->src, &c->dst);
	c->n_tlvs = rec->tlv_count > 255 ? 255 : (__u8)rec->tlv_count;
	if (t)
		tlv_types(t, rec->info.tlv_stored, c);
}

/* The counters of a parse result: the version and kind of a header, or the class of an error. */
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
	e->local = rec->local;
	e->peer = rec->peer;
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
	trace_record(PPBPF_TRACE_REJECTED, rec, NULL);
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
	trace_record(PPBPF_TRACE_PLAIN, rec, NULL);
}

/* What recording a verdict asks of the segment that brought it. */
enum verdict_action { V_HOLD, V_PASS, V_DROP };

/*
 * Record the verdict on the first `have` stream bytes, held in pend (NULL
 * for a header with no TLVs to keep): rc is the parse result under the
 * port's live policy (flags). V_HOLD while the header is
 * incomplete: the caller keeps pend. V_DROP where the socket is rejected, or
 * where the sweep took the verdict first (it may be storing a rejection
 * right now: nothing may pass before it is known).
 */
static __always_inline enum verdict_action record_verdict(struct bpf_sock *sk, struct ppbpf_sk *rec,
							   struct ppbpf_pending *pend, __u32 have, int rc,
							   const struct ppbpf_hdr *h, __u32 flags)
{
	struct ppbpf_sk_tlvs *tlvs = NULL;

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
	ppbpf_record_header(&rec->info, h);
	tlvs = keep_tlvs(sk, rec, pend, h);
	rec->tlv_count = h->tlv_count;
	barrier();
	WRITE_ONCE(rec->info.state, PPBPF_STATE_DONE);
	barrier();
	WRITE_ONCE(rec->info.have, have);
	update_conn(rec->info.cookie, rec, tlvs);
	trace_record(rec->info.flags & PPBPF_INFO_REMOVED ? PPBPF_TRACE_SHIFTED : PPBPF_TRACE_PARSED, rec, tlvs);
	return V_PASS;
}

#endif /* PPBPF_LIB_VERDICT_H */
