/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The sweep (iter/tcp, run by `ppbpf run`): late headers time out, rejected
 * sockets are reset, and listener entries no child took are removed.
 */
#ifndef PPBPF_LIB_SWEEP_H
#define PPBPF_LIB_SWEEP_H

#include "consts.h"
#include "maps.h"
#include "ordering.h"
#include "stats.h"
#include "verdict.h"

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
	__u16 port = rec->local.port;
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

/* A bpf_for_each_map_elem callback: remove a listener entry no child took in time. */
static long early_gc(void *map, const void *key, void *value, void *ctx)
{
	const struct ppbpf_early *e = value;
	__u64 now = *(__u64 *)ctx;

	if (now - e->born_ns > EARLY_TTL_NS)
		bpf_map_delete_elem(map, key);
	return 0;
}

/* The end of the walk: the listener entries' turn. */
static __always_inline void sweep_listener_entries(void)
{
	__u64 now = bpf_ktime_get_ns();

	bpf_for_each_map_elem(&early, early_gc, &now, 0);
	bpf_for_each_map_elem(&early_nohs, early_gc, &now, 0);
}

/* A rejected socket still open: reset it with bpf_sock_destroy, or ask `ppbpf run` to. */
static __always_inline void reset_rejected(struct bpf_iter__tcp *ctx, struct sock_common *skc, struct ppbpf_sk *rec)
{
	int state = skc->skc_state;

	if (state != TCP_ESTABLISHED && state != TCP_CLOSE_WAIT)
		return; /* already closing or closed */
	rec->reset_asked = 1; /* on_close counts the reset */
	if (!have_sock_destroy) {
		ask_reset(ctx->meta->seq, skc, rec);
		return;
	}
	if (bpf_sock_destroy(skc)) {
		rec->reset_asked = 0;
		return;
	}
	BPF_SEQ_PRINTF(ctx->meta->seq, "%llu %d\n", rec->info.cookie, rec->info.error);
}

/* One socket of the walk: if it has a record, time out a late header, reset a rejected socket. */
static __always_inline void sweep_socket(struct bpf_iter__tcp *ctx, struct sock_common *skc)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	struct ppbpf_sk *rec;

	if (!tp)
		return; /* a request or time-wait socket: never tracked */
	rec = bpf_sk_storage_get(&ppbpf_sks, tp, 0, 0);
	if (!rec)
		return;
	if (READ_ONCE(rec->info.state) == PPBPF_STATE_PENDING)
		check_deadline(rec, bpf_ktime_get_ns());
	if (READ_ONCE(rec->info.state) == PPBPF_STATE_ERROR)
		reset_rejected(ctx, skc, rec);
}

#endif /* PPBPF_LIB_SWEEP_H */
