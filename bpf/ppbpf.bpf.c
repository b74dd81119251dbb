// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * ppbpf's kernel side, "annotate" mode: the byte stream is never modified,
 * only held back until the header is judged, or dropped once it is rejected.
 * This file holds the entry points, one per hook; the logic is in lib/:
 *
 *  sockops             on passive establishment, apply the port policy and the
 *                      trust check, create the socket's record and its table
 *                      entry (or reject it); on close, drop the table and
 *                      pending entries                           (lifecycle.h)
 *  cgroup_skb/ingress  copy the first stream bytes of tracked sockets, in
 *                      sequence, run the shared parser over them, hold header
 *                      segments until the verdict, drop a rejected socket's
 *                      (stream.h); at a listener, judge a header that comes
 *                      before the child socket exists              (handoff.h)
 *  cgroup/getsockopt   getsockopt(fd, SOL_PPBPF, ...): the query ABI (query.h)
 *  cgroup/getsockopt   PPBPF_RELAY_TOKEN: a token for an inbound socket's
 *                      original client; cgroup/setsockopt PPBPF_RELAY: an
 *                      outgoing socket's header relays it          (relay.h)
 *  cgroup/getpeername  accept()/getpeername() return the original source
 *                                                                    (query.h)
 *  sk_msg              the sending side: a PROXY header before the first
 *                      bytes of chosen outgoing connections; sockops puts
 *                      them in its sockhash and takes them out   (send.h)
 *  cgroup/connect4/6   Fast Open to a header's destination refused   (send.h)
 *  cgroup_skb/egress   a connection that could get no header (a full
 *                      sockhash) sends no data: it fails closed     (send.h)
 *  iter/tcp            the sweep (run by `ppbpf run`): timeouts and resets
 *                                                                    (sweep.h)
 *  syscall             the parser self-test, run by the loader
 *
 * and beneath them: segment.h (reading a segment, copying its payload),
 * verdict.h (claim, accept, plain, reject), policy.h (port bits, trust, the
 * live policy), pending.h (incomplete headers), ordering.h (how the record
 * is published), stats.h, addr.h; consts.h, structs.h and maps.h.
 *
 * The lib/ headers expect vmlinux.h and libbpf's helpers first, as
 * include/ppbpf/target.h does.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/handoff.h"
#include "lib/lifecycle.h"
#include "lib/query.h"
#include "lib/relay.h"
#include "lib/send.h"
#include "lib/shift.h"
#include "lib/stream.h"
#include "lib/sweep.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("sockops")
int ppbpf_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive_established(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_active_established(skops);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		on_transmit(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}

SEC("cgroup_skb/ingress")
int ppbpf_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct ppbpf_sk *rec;
	__u32 tcp_state;
	__u8 state;

	/* Untracked traffic leaves here: its local port has no policy. */
	if (!sk || !port_bit(&port_bits, sk->src_port))
		return PASS;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return PASS;
	if (shifted_port(sk->src_port))
		return on_shifted_socket_segment(sk);
	tcp_state = READ_ONCE(sk->state); /* before the record is looked up: see on_unset_segment */
	if (tcp_state == BPF_TCP_LISTEN)
		return on_listener_segment(skb);
	barrier();
	rec = bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0);
	if (!rec)
		return on_unset_segment(skb, sk, tcp_state);
	state = READ_ONCE(rec->info.state);
	if (state == PPBPF_STATE_PENDING)
		return on_stream_segment(skb, sk, rec);
	if (state == PPBPF_STATE_ERROR)
		return on_rejected_segment(skb);
	if (state == PPBPF_STATE_NONE) /* sockops is making the record on another CPU right now */
		return hold_until_set_up(skb);
	return PASS;
}

/* cgroup_skb/egress: the data of a connection that could get no header never leaves (send.h). */
SEC("cgroup_skb/egress")
int ppbpf_egress(struct __sk_buff *skb)
{
	return egress_allowed(skb);
}

/* tc, every interface's ingress: transparent mode's client segments (and on loopback the server's). */
SEC("tc")
int ppbpf_tc_ingress(struct __sk_buff *skb)
{
	return tc_ingress(skb);
}

/* tc, every interface's egress but loopback's: the server's segments of transparent flows. */
SEC("tc")
int ppbpf_tc_egress(struct __sk_buff *skb)
{
	return tc_egress(skb);
}

/* sk_msg, on the sends of sockets in the sockhash send_socks: the first one gets the PROXY header. */
SEC("sk_msg")
int ppbpf_send(struct sk_msg_md *msg)
{
	return send_first_bytes(msg);
}

/* connect() of the cgroup's sockets: TCP Fast Open to a --send destination is refused (send.h). */
SEC("cgroup/connect4")
int ppbpf_connect4(struct bpf_sock_addr *ctx)
{
	return connect_allowed(ctx, 1);
}

SEC("cgroup/connect6")
int ppbpf_connect6(struct bpf_sock_addr *ctx)
{
	return connect_allowed(ctx, 0);
}

SEC("cgroup/getsockopt")
int ppbpf_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct ppbpf_sk *rec;

	if (ctx->level != SOL_PPBPF || !sk)
		return 1;
	rec = bpf_sk_storage_get(&ppbpf_sks, sk, 0, 0);
	if (!rec) {
		ctx->retval = will_be_tracked(sk) ? -EAGAIN : -ENODATA;
		return 1;
	}
	count(PPBPF_CNT_QUERIES);
	if (ctx->optname == PPBPF_INFO)
		answer_info(ctx, rec);
	else if (ctx->optname == PPBPF_TLVS)
		answer_tlvs(ctx, sk, rec);
	else if (ctx->optname == PPBPF_RELAY_TOKEN)
		answer_relay_token(ctx, sk, rec);
	else
		ctx->retval = -ENOPROTOOPT;
	return 1;
}

/* setsockopt(fd, SOL_PPBPF, PPBPF_RELAY, ...): an outgoing socket gets a relayed header (relay.h). */
SEC("cgroup/setsockopt")
int ppbpf_setsockopt(struct bpf_sockopt *ctx)
{
	if (ctx->level != SOL_PPBPF)
		return 1;
	return relay_setsockopt(ctx);
}

SEC("cgroup/getpeername4")
int ppbpf_getpeername4(struct bpf_sock_addr *ctx)
{
	rewrite_peer4(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int ppbpf_getpeername6(struct bpf_sock_addr *ctx)
{
	rewrite_peer6(ctx);
	return 1;
}

/*
 * Run by reading the pinned iterator (`ppbpf run` does, after each event and
 * every --sweep-ms): for each TCP socket of the reader's network namespace
 * with a record, time out late headers and reset rejected sockets. Prints
 * "<cookie> <error>" per socket reset, or, where the kernel has no
 * bpf_sock_destroy, the line of ask_reset() per socket for the reader to reset.
 */
SEC("iter/tcp")
int ppbpf_sweep(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;

	if (!skc) /* the end of the walk (an iterator's last call) */
		sweep_listener_entries();
	else
		sweep_socket(ctx, skc);
	return 0;
}

/* What ppbpf_flow_sweep removed in its last run (read by `ppbpf run`). */
__u32 flow_sweep_removed;

/*
 * Run by `ppbpf run` every second (BPF_PROG_TEST_RUN on its pin): transparent
 * flows past TIME_WAIT, and handshakes that never completed, go (sweep_flow).
 */
SEC("syscall")
int ppbpf_flow_sweep(void *ctx __attribute__((unused)))
{
	__u32 removed = 0;

	bpf_for_each_map_elem(&flows, sweep_flow, &removed, 0);
	flow_sweep_removed = removed;
	return (int)removed;
}

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
