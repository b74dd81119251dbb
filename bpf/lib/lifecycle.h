/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * sockops: a tracked socket's record from its passive establishment (the
 * port policy, the trust check, the table entry, a listener's handoff) to
 * its close (the table and pending entries go).
 */
#ifndef PPBPF_LIB_LIFECYCLE_H
#define PPBPF_LIB_LIFECYCLE_H

#include "addr.h"
#include "handoff.h"
#include "shift.h"
#include "maps.h"
#include "pending.h"
#include "policy.h"
#include "stats.h"
#include "verdict.h"

/*
 * The record of a socket sockops tracks, with its policy and endpoints. The
 * storage is visible to segments on other CPUs from its creation (state
 * NONE: held, see on_unset_segment), so PENDING is stored last, after the
 * fields a segment of a pending header reads.
 */
static __always_inline void init_record(struct ppbpf_sk *rec, struct bpf_sock_ops *skops,
					const struct ppbpf_port_policy *pol, const struct ppbpf_conn *c,
					__u64 cookie, int v4)
{
	rec->info.abi = PPBPF_ABI_VERSION;
	rec->info.size = sizeof(rec->info);
	rec->info.cookie = cookie;
	rec->info.established_ns = c->established_ns;
	rec->info.need = PPBPF_MIN_LEN;
	rec->rcv_start = skops->rcv_nxt;
	rec->port_flags = pol->flags;
	rec->max_header = max_header_of(pol);
	rec->timeout_ms = pol->timeout_ms;
	rec->af = c->af;
	rec->peer_v4 = (__u8)v4;
	rec->local = c->local;
	rec->peer = c->peer;
	if (pol->flags & PPBPF_PORT_REWRITE_PEER)
		rec->info.flags |= PPBPF_INFO_REWRITE_PEER;
	barrier();
	WRITE_ONCE(rec->info.state, PPBPF_STATE_PENDING);
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
	if (pol->flags & PPBPF_PORT_TRANSPARENT)
		take_flow(skops, sk, c, rec);
	else
		take_early(skops, sk, c, rec);
}

/* A passive connection established on a policy port: track it, unless its peer is untrusted and the port leaves untrusted peers plain. */
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
	v4 = sockops_addrs(skops, c.local.addr, c.peer.addr);
	untrusted = !trusted(port, v4, c.peer.addr);
	if (untrusted && !(pol->flags & PPBPF_PORT_REJECT_UNTRUSTED)) {
		count(PPBPF_CNT_UNTRUSTED);
		return;
	}
	c.established_ns = bpf_ktime_get_ns();
	c.af = (__u8)skops->family;
	c.local.port = port;
	c.peer.port = bpf_ntohl(skops->remote_port) & 0xffff; /* the port sits in the upper half */
	track(skops, pol, &c, v4, untrusted);
}

/* A tracked socket closes: its table entry and any pending entry go; a reset the sweep asked for is counted. */
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
	trace_record(PPBPF_TRACE_CLOSED, rec, NULL);
	if (rec->relay_token) /* its client can no longer be relayed */
		bpf_map_delete_elem(&relay_tokens, &rec->relay_token);
	if (rec->port_flags & PPBPF_PORT_TRANSPARENT)
		flow_closed(rec, skops->args[0]);
	/* A locked write before the delete: an ingress storing an entry now sees it (keep_pending). */
	__sync_fetch_and_or(&rec->closing, 1);
	if (rec->stored) /* a header still incomplete at close */
		drop_pending_closed(rec, cookie);
}

#endif /* PPBPF_LIB_LIFECYCLE_H */
