/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The query side: getsockopt(fd, SOL_PPBPF, ...) answered from the record
 * (the ABI is in include/ppbpf/abi.h), and getpeername()/accept() rewritten
 * to the header's source on ports with --rewrite-peer.
 */
#ifndef PPBPF_LIB_QUERY_H
#define PPBPF_LIB_QUERY_H

#include "addr.h"
#include "consts.h"
#include "maps.h"
#include "ordering.h"
#include "policy.h"
#include "stats.h"

/* PPBPF_INFO: the record's info, a consistent snapshot. */
static __always_inline void answer_info(struct bpf_sockopt *ctx, const struct ppbpf_sk *rec)
{
	__u8 *p = ctx->optval, *end = ctx->optval_end;
	struct ppbpf_info *out = (struct ppbpf_info *)p;
	__u32 have, need;
	__u8 state;

	if (p + sizeof(rec->info) > end) {
		ctx->retval = -EINVAL;
		return;
	}
	/* Reverse of the writers' order (see ordering.h). */
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
}

/*
 * PPBPF_TLVS: a count, then the TLV bytes kept for the socket. Room for
 * PPBPF_TLVS_SIZE always does; room for PPBPF_TLVS_MIN does unless more was
 * kept (a cap raised past the default): Python's socket.getsockopt offers
 * at most 1024 bytes.
 */
static __always_inline void answer_tlvs(struct bpf_sockopt *ctx, struct bpf_sock *sk, const struct ppbpf_sk *rec)
{
	__u8 *p = ctx->optval, *end = ctx->optval_end;
	struct ppbpf_sk_tlvs *t;
	__u32 n;

	if (p + PPBPF_TLVS_MIN > end) {
		ctx->retval = -EINVAL;
		return;
	}
	t = bpf_sk_storage_get(&ppbpf_tlvs, sk, 0, 0);
	n = t ? rec->info.tlv_stored : 0;
	if (n > PPBPF_TLV_MAX)
		n = PPBPF_TLV_MAX;
	if (n > PPBPF_TLVS_MIN - 4 && p + PPBPF_TLVS_SIZE > end) {
		ctx->retval = -ENOSPC;
		return;
	}
	*(__u32 *)p = n;
	if (n)
		bpf_probe_read_kernel(p + 4, n, t->bytes);
	ctx->optlen = (int)(4 + n);
	ctx->retval = 0;
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

/* getpeername4: the header's IPv4 source, for an IPv4 socket. */
static __always_inline void rewrite_peer4(struct bpf_sock_addr *ctx)
{
	struct ppbpf_sk *rec = rewrite_source(ctx->sk);
	__u32 a;

	if (!rec || rec->info.family != PPBPF_FAM_TCP4)
		return; /* an IPv6 client cannot be told to an IPv4 socket */
	__builtin_memcpy(&a, rec->info.src_addr, 4);
	ctx->user_ip4 = a;
	ctx->user_port = bpf_htons(rec->info.src_port);
	count(PPBPF_CNT_REWRITES);
}

/* getpeername6: the header's source, for an IPv6 socket (an IPv4 one v4-mapped). */
static __always_inline void rewrite_peer6(struct bpf_sock_addr *ctx)
{
	struct ppbpf_sk *rec = rewrite_source(ctx->sk);
	__u32 a[4];

	if (!rec)
		return;
	if (rec->info.family == PPBPF_FAM_TCP6) {
		__builtin_memcpy(a, rec->info.src_addr, 16);
	} else if (rec->info.family == PPBPF_FAM_TCP4) { /* as ::ffff:a.b.c.d on a dual-stack socket */
		a[0] = 0;
		a[1] = 0;
		a[2] = bpf_htonl(0x0000ffff);
		__builtin_memcpy(&a[3], rec->info.src_addr, 4);
	} else {
		return;
	}
	ctx->user_ip6[0] = a[0];
	ctx->user_ip6[1] = a[1];
	ctx->user_ip6[2] = a[2];
	ctx->user_ip6[3] = a[3];
	ctx->user_port = bpf_htons(rec->info.src_port);
	count(PPBPF_CNT_REWRITES);
}

#endif /* PPBPF_LIB_QUERY_H */
