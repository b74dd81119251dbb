/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Relaying the original client down a chain (ppbpf_relay in libppbpf), with
 * no fd or map of the caller's:
 *
 *  getsockopt(in, SOL_PPBPF, PPBPF_RELAY_TOKEN)   an inbound socket whose
 *      header was accepted: its original endpoints and TLVs go into
 *      relay_tokens under a random token, returned; the entry goes when the
 *      socket closes (on_close)
 *  setsockopt(out, SOL_PPBPF, PPBPF_RELAY, {token, flags})   the header
 *      with those endpoints is built into the outgoing socket's send_sks
 *      storage (PREBUILT), and the sending side writes it: the socket joins
 *      the sockhash when it is connected (on_active_established), or at
 *      once replaces a --send header not yet written
 *
 * The token proves the caller had the inbound socket: a process cannot claim
 * a client it never served. Errors are in include/ppbpf/abi.h.
 */
#ifndef PPBPF_LIB_RELAY_H
#define PPBPF_LIB_RELAY_H

#include "maps.h"
#include "ordering.h"
#include "send.h"
#include "stats.h"

/* The original client of a record whose header was accepted, into r. Returns 0, or -ENODATA. */
static __always_inline int relay_src_of(struct bpf_sock *sk, const struct ppbpf_sk *rec, struct ppbpf_relay_src *r)
{
	struct ppbpf_sk_tlvs *t;
	__u32 n;

	if (rec->info.command != PPBPF_CMD_PROXY ||
	    (rec->info.family != PPBPF_FAM_TCP4 && rec->info.family != PPBPF_FAM_TCP6))
		return -ENODATA;
	r->v4 = rec->info.family == PPBPF_FAM_TCP4;
	__builtin_memcpy(r->src.addr, rec->info.src_addr, 16);
	__builtin_memcpy(r->dst.addr, rec->info.dst_addr, 16);
	r->src.port = rec->info.src_port;
	r->dst.port = rec->info.dst_port;
	t = bpf_sk_storage_get(&ppbpf_tlvs, sk, 0, 0);
	n = t ? rec->info.tlv_stored : 0;
	if (n > PPBPF_RELAY_TLV_MAX)
		n = PPBPF_RELAY_TLV_MAX;
	r->tlv_len = n;
	if (n)
		bpf_probe_read_kernel(r->tlvs, n, t->bytes);
	return 0;
}

/* A new token for rec's client, in relay_tokens and in the record. Returns 0 or -errno. */
static __always_inline int new_relay_token(struct bpf_sock *sk, struct ppbpf_sk *rec)
{
	__u32 zero = 0;
	struct ppbpf_relay_src *r = bpf_map_lookup_elem(&scratch_relay, &zero);
	__u64 token;
	int err;

	if (!r)
		return -ENOMEM;
	err = relay_src_of(sk, rec, r);
	if (err)
		return err;
	token = (__u64)bpf_get_prandom_u32() << 32 | bpf_get_prandom_u32();
	token |= !token; /* 0 means none */
	if (bpf_map_update_elem(&relay_tokens, &token, r, BPF_NOEXIST))
		return -ENOSPC;
	rec->relay_token = token;
	count(PPBPF_CNT_RELAY_TOKENS);
	return 0;
}

/* getsockopt PPBPF_RELAY_TOKEN (under the socket's lock): the socket's token, made on the first call. */
static __always_inline void answer_relay_token(struct bpf_sockopt *ctx, struct bpf_sock *sk, struct ppbpf_sk *rec)
{
	__u8 *p = ctx->optval, *end = ctx->optval_end;
	__u8 state;
	int err;

	if (p + sizeof(__u64) > end) {
		ctx->retval = -EINVAL;
		return;
	}
	state = READ_ONCE(rec->info.state);
	barrier(); /* the fields after the state: they were written before it */
	if (state != PPBPF_STATE_DONE) {
		ctx->retval = state == PPBPF_STATE_PENDING ? -EAGAIN : -ENODATA;
		return;
	}
	if (!rec->relay_token) {
		err = new_relay_token(sk, rec);
		if (err) {
			ctx->retval = err;
			return;
		}
	}
	*(__u64 *)p = rec->relay_token;
	ctx->optlen = sizeof(__u64);
	ctx->retval = 0;
}

/* A setsockopt refused with err (a negative errno), counted. Returns what the program returns. */
static __always_inline int relay_refused(int err)
{
	count(PPBPF_CNT_RELAY_REFUSED);
	bpf_set_retval(err);
	return 0;
}

/*
 * Has the socket sent bytes (the header can no longer be first)? A data
 * segment went out, or sk_msg wrote a --send header (which a later segment
 * may not have taken yet). (A socket that failed closed is asked first.)
 */
static __always_inline int sent_bytes(struct bpf_sock *sk, const struct ppbpf_send_sk *s)
{
	struct bpf_tcp_sock *tp = bpf_tcp_sock(sk); /* bpf_skc_to_tcp_sock is not for sockopt programs */

	return (tp && tp->data_segs_out) || (s && (s->state == SEND_SENT || s->state == SEND_RELEASED));
}

/* The relayed header for flags into s. Returns its length, or 0. */
static __always_inline __u32 build_relayed(struct ppbpf_send_sk *s, const struct ppbpf_relay_src *r, __u32 flags)
{
	struct v2_extras x = { .relayed = (flags & PPBPF_RELAY_TLVS) ? r : NULL };

	if (flags & PPBPF_RELAY_V1)
		return build_v1(s->hdr, r->v4, &r->src, &r->dst);
	if (flags & PPBPF_RELAY_UNIQUE_ID)
		x.flags |= PPBPF_SEND_UNIQUE_ID;
	if (flags & PPBPF_RELAY_CRC32C)
		x.flags |= PPBPF_SEND_CRC32C;
	return build_v2(s->hdr, r->v4, &r->src, &r->dst, &x);
}

/*
 * setsockopt PPBPF_RELAY (under the socket's lock, as are sk_msg and a
 * backlogged establishment): the relayed header into the socket's send
 * storage. Before the connection is established it waits there (PREBUILT);
 * a --send header not yet written (READY) is replaced in place.
 */
static __always_inline int relay_setsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct ppbpf_relay *req = ctx->optval;
	struct ppbpf_relay_src *r;
	struct ppbpf_send_sk *s;
	__u32 state, flags, len;
	__u64 token;

	if (ctx->optname != PPBPF_RELAY)
		return relay_refused(-ENOPROTOOPT);
	/* the kernel's copy is at least 16 bytes whatever optlen says: optlen is the caller's length */
	if (ctx->optlen < (int)sizeof(*req) || (void *)(req + 1) > ctx->optval_end)
		return relay_refused(-EINVAL);
	token = req->token;
	flags = req->flags;
	if (flags & ~PPBPF_RELAY_FLAGS || !sk || sk->protocol != IPPROTO_TCP)
		return relay_refused(-EINVAL);
	state = sk->state;
	if (state == BPF_TCP_LISTEN)
		return relay_refused(-EINVAL);
	s = bpf_sk_storage_get(&send_sks, sk, 0, 0);
	if (s && s->state == SEND_FAILED) /* it found no room to join the sockhash, and fails closed */
		return relay_refused(-ENOMEM);
	if (sent_bytes(sk, s))
		return relay_refused(-EALREADY);
	r = bpf_map_lookup_elem(&relay_tokens, &token);
	if (!r)
		return relay_refused(-ENOENT);
	if (state != BPF_TCP_CLOSE && state != BPF_TCP_SYN_SENT && !(s && s->state == SEND_READY))
		return relay_refused(-EISCONN); /* connected, and not in the sockhash: nothing would write it */
	if (!s)
		s = bpf_sk_storage_get(&send_sks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return relay_refused(-ENOMEM);
	len = build_relayed(s, r, flags);
	if (!len)
		return relay_refused(-EINVAL);
	s->len = len;
	if (s->state != SEND_READY)
		s->state = SEND_PREBUILT;
	count(PPBPF_CNT_RELAYED);
	ctx->optlen = -1; /* done: the kernel's own setsockopt does not see it */
	return 1;
}

#endif /* PPBPF_LIB_RELAY_H */
