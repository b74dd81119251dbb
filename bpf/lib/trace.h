/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Events for `ppbpf trace`, on the ring buffer "trace" of their own. Nothing
 * is written unless a tracer named itself in trace_ctl: one array read per
 * verdict or close is all tracing costs when nobody traces. A full ring (a
 * slow or paused reader) counts PPBPF_CNT_TRACE_LOST, which `trace` prints.
 */
#ifndef PPBPF_LIB_TRACE_H
#define PPBPF_LIB_TRACE_H

#include "addr.h"
#include "maps.h"
#include "stats.h"

/* A new event of this kind, zeroed up to its data, or NULL (nobody traces, or the ring is full). */
static __always_inline struct ppbpf_trace_event *trace_begin(__u8 kind)
{
	struct ppbpf_trace_event *e;
	struct ppbpf_trace_ctl *ctl;
	__u32 zero = 0;

	ctl = bpf_map_lookup_elem(&trace_ctl, &zero);
	if (!ctl || !READ_ONCE(ctl->pid))
		return NULL;
	e = bpf_ringbuf_reserve(&trace, sizeof(*e), 0);
	if (!e) {
		count(PPBPF_CNT_TRACE_LOST);
		return NULL;
	}
	__builtin_memset(e, 0, offsetof(struct ppbpf_trace_event, data));
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	return e;
}

/* The first len bytes at src (at most PPBPF_TRACE_DATA) as the event's data. */
static __always_inline void trace_data(struct ppbpf_trace_event *e, const void *src, __u32 len)
{
	if (len > PPBPF_TRACE_DATA)
		len = PPBPF_TRACE_DATA;
	if (len && !bpf_probe_read_kernel(e->data, len, src))
		e->data_len = (__u16)len;
}

/* A tracked socket's verdict or close, from its record (tlvs: its kept TLVs, or NULL). */
static __always_inline void trace_record(__u8 kind, const struct ppbpf_sk *rec, const struct ppbpf_sk_tlvs *tlvs)
{
	struct ppbpf_trace_event *e = trace_begin(kind);

	if (!e)
		return;
	e->cookie = rec->info.cookie;
	e->error = rec->info.error;
	e->header_len = rec->info.header_len;
	e->have = rec->info.have;
	e->af = rec->af;
	e->state = rec->info.state;
	e->local = rec->local;
	e->peer = rec->peer;
	if (rec->info.state == PPBPF_STATE_DONE) {
		e->version = rec->info.version;
		e->command = rec->info.command;
		e->family = rec->info.family;
		orig_endpoints(&rec->info, &e->src, &e->dst);
		if (tlvs)
			trace_data(e, tlvs->bytes, rec->info.tlv_stored);
	}
	bpf_ringbuf_submit(e, 0);
}

/* A transparent handshake refused at tc, before it had a socket (key: its 4-tuple). */
static __always_inline void trace_flow_refused(const struct ppbpf_early_key *key, int error)
{
	struct ppbpf_trace_event *e = trace_begin(PPBPF_TRACE_REJECTED);

	if (!e)
		return;
	e->error = error; /* af 0: no socket yet, its addresses say the family */
	e->state = PPBPF_STATE_ERROR;
	e->local = key->local;
	e->peer = key->peer;
	bpf_ringbuf_submit(e, 0);
}

/* The sending side wrote a socket's header (s: the header, as sent). */
static __always_inline void trace_sent(struct bpf_sock *sk, const struct ppbpf_send_sk *s)
{
	struct ppbpf_trace_event *e = trace_begin(PPBPF_TRACE_SENT);
	__u32 l[4], r[4];

	if (!e)
		return;
	l[0] = sk->src_ip6[0], l[1] = sk->src_ip6[1], l[2] = sk->src_ip6[2], l[3] = sk->src_ip6[3];
	r[0] = sk->dst_ip6[0], r[1] = sk->dst_ip6[1], r[2] = sk->dst_ip6[2], r[3] = sk->dst_ip6[3];
	norm_addr(sk->family, sk->src_ip4, l, e->local.addr);
	norm_addr(sk->family, sk->dst_ip4, r, e->peer.addr);
	e->cookie = s->cookie;
	e->header_len = s->len;
	e->af = (__u8)sk->family;
	e->state = PPBPF_STATE_DONE;
	e->local.port = (__u16)sk->src_port;
	e->peer.port = bpf_ntohs((__u16)sk->dst_port);
	trace_data(e, s->hdr, s->len);
	bpf_ringbuf_submit(e, 0);
}

#endif /* PPBPF_LIB_TRACE_H */
