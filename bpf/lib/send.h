/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The sending side: a PROXY header as the first bytes of chosen outgoing
 * connections, written into the byte stream before it is segmented, so that
 * GSO, checksums and TCP options never come into it.
 *
 *  sockops, active establishment   a connection of the cgroup to a port with
 *                                  an outbound policy and one of its
 *                                  destinations: its header is built (the
 *                                  socket's own addresses) into its storage,
 *                                  and the socket joins the sockhash
 *  sk_msg, on its sends            the first one gets the header in front
 *                                  (bpf_msg_push_data); if it cannot be
 *                                  written, the send fails (EACCES): nothing
 *                                  goes out without it
 *  sockops, a segment goes out     once the header has gone out with one,
 *                                  the socket leaves the sockhash, within the
 *                                  send that wrote it: later sends take the
 *                                  plain TCP path, and reads never wait in
 *                                  the sockmap's (on 6.1 a blocking read
 *                                  there can end in EAGAIN at any wake-up)
 *
 * Nothing on the way in passes through the sockhash: it has no sk_skb
 * program, so the receive path stays TCP's own (see DESIGN's facts).
 */
#ifndef PPBPF_LIB_SEND_H
#define PPBPF_LIB_SEND_H

#include <bpf/bpf_core_read.h>
#include <ppbpf/crc32c.h>
#include "addr.h"
#include "maps.h"
#include "policy.h"
#include "segment.h"
#include "stats.h"
#include "trace.h"

/* Is this destination, on this remote port, one that gets a header? */
static __always_inline int send_to(__u16 port, int v4, const __u8 *addr)
{
	return in_port_blocks(&send_to4, &send_to6, port, v4, addr);
}

static const __u8 v2_signature[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* A TLV at out[at]: its type, 16-bit length and len bytes of val. Returns the offset after it. */
static __always_inline __u32 put_tlv(__u8 *out, __u32 at, __u8 type, const void *val, __u32 len)
{
	__u8 *t = out + (at & (PPBPF_SEND_MAX - 1));

	len &= 0xff; /* every TLV written here is shorter (a bound for the verifier) */
	t[0] = type;
	t[1] = 0;
	t[2] = (__u8)len;
	if (len)
		bpf_probe_read_kernel(t + 3, len, val);
	return at + 3 + len;
}

/* 128 random bits as 32 hex digits: a UNIQUE_ID of the connection's own. */
static __always_inline void random_id(__u8 *out)
{
	for (int w = 0; w < 4; w++) {
		__u32 r = bpf_get_prandom_u32();

		for (int k = 0; k < 8; k++) {
			__u8 d = (r >> (k * 4)) & 15;

			out[w * 8 + k] = d < 10 ? '0' + d : 'a' + d - 10;
		}
	}
}

/* Where the CRC of a header is summed (a bpf_loop callback over its bytes). */
struct crc_walk {
	const __u8 *hdr;
	__u32 len;
	__u32 crc;
};

static long crc_byte(__u64 i, void *ctx)
{
	struct crc_walk *w = ctx;

	__u32 idx;

	if (i >= w->len)
		return 1;
	idx = w->crc ^ w->hdr[i & (PPBPF_SEND_MAX - 1)];
	/* masked after the xor, as written: 6.1's verifier loses the bound if clang masks first */
	asm volatile("" : "+r"(idx));
	w->crc = ppbpf_crc32c_table[idx & 0xff] ^ (w->crc >> 8);
	return 0;
}

/* Where relayed TLVs are copied (a bpf_loop callback, one TLV a call). */
struct tlv_copy {
	const __u8 *in;
	__u32 in_len;
	__u32 pos;
	__u8 *out;
	__u32 at;
	__u32 has_id; /* a UNIQUE_ID was among them */
};

/* Copy the next TLV of c->in to c->out, unless it is a CRC32C or NOOP (they belong to their own header). */
static long copy_tlv(__u64 i __attribute__((unused)), void *ctx)
{
	struct tlv_copy *c = ctx;
	__u32 p = c->pos, type, len;

	if (p + 3 > c->in_len)
		return 1;
	type = c->in[p & (PPBPF_SEND_MAX - 1)];
	len = (__u32)c->in[(p + 1) & (PPBPF_SEND_MAX - 1)] << 8 | c->in[(p + 2) & (PPBPF_SEND_MAX - 1)];
	if (p + 3 + len > c->in_len || c->at + 3 + len > PPBPF_SEND_MAX)
		return 1; /* cut short where it was kept: not relayed */
	c->pos = p + 3 + len;
	if (type == PPBPF_TLV_CRC32C || type == PPBPF_TLV_NOOP)
		return 0;
	if (type == PPBPF_TLV_UNIQUE_ID)
		c->has_id = 1;
	bpf_probe_read_kernel(c->out + (c->at & (PPBPF_SEND_MAX - 1)), (3 + len) & (PPBPF_SEND_MAX - 1),
			      c->in + (p & (PPBPF_SEND_MAX - 1)));
	c->at += 3 + len;
	return 0;
}

/* What a v2 header carries besides the addresses: a --send policy's TLVs, or a relayed header's. */
struct v2_extras {
	const struct ppbpf_send_policy *pol; /* AUTHORITY and ALPN, or NULL */
	const struct ppbpf_relay_src *relayed; /* its TLVs, or NULL */
	__u32 flags;                         /* PPBPF_SEND_* */
};

/* A v2 PROXY header from src to dst into out, with the TLVs x asks for. Returns its length. */
static __always_inline __u32 build_v2(__u8 *out, int v4, const struct ppbpf_endpoint *src,
				      const struct ppbpf_endpoint *dst, const struct v2_extras *x)
{
	const struct ppbpf_send_policy *pol = x->pol;
	__u32 alen = v4 ? 4 : 16, at = 16, crc_at = 0, has_id = 0;
	__u16 sport = bpf_htons(src->port), dport = bpf_htons(dst->port);
	__u8 id[32];

	__builtin_memcpy(out, v2_signature, sizeof(v2_signature));
	out[12] = 0x21;              /* version 2, PROXY */
	out[13] = v4 ? 0x11 : 0x21; /* TCP over IPv4 or IPv6 */
	if (v4) {
		__builtin_memcpy(out + at, src->addr, 4);
		__builtin_memcpy(out + at + 4, dst->addr, 4);
	} else {
		__builtin_memcpy(out + at, src->addr, 16);
		__builtin_memcpy(out + at + 16, dst->addr, 16);
	}
	at += 2 * alen;
	__builtin_memcpy(out + (at & 63), &sport, 2);
	__builtin_memcpy(out + ((at + 2) & 63), &dport, 2);
	at += 4;
	if (pol && pol->authority_len)
		at = put_tlv(out, at, PPBPF_TLV_AUTHORITY, pol->authority, pol->authority_len);
	if (pol && pol->alpn_len)
		at = put_tlv(out, at, PPBPF_TLV_ALPN, pol->alpn, pol->alpn_len);
	if (x->relayed) {
		struct tlv_copy c = { .in = x->relayed->tlvs, .in_len = x->relayed->tlv_len, .out = out, .at = at };

		if (c.in_len > PPBPF_RELAY_TLV_MAX)
			c.in_len = PPBPF_RELAY_TLV_MAX;
		bpf_loop(PPBPF_RELAY_TLV_MAX / 3, copy_tlv, &c, 0);
		at = c.at;
		has_id = c.has_id;
	}
	if ((x->flags & PPBPF_SEND_UNIQUE_ID) && !has_id) {
		random_id(id);
		at = put_tlv(out, at, PPBPF_TLV_UNIQUE_ID, id, sizeof(id));
	}
	if (x->flags & PPBPF_SEND_CRC32C) {
		__u32 zero = 0;

		crc_at = at + 3;
		at = put_tlv(out, at, PPBPF_TLV_CRC32C, &zero, 4);
	}
	at &= PPBPF_SEND_MAX - 1;
	out[14] = (__u8)((at - 16) >> 8); /* what follows the fixed part */
	out[15] = (__u8)(at - 16);
	if (crc_at) {
		struct crc_walk w = { .hdr = out, .len = at, .crc = ~0u };
		__u32 crc;

		bpf_loop(PPBPF_SEND_MAX, crc_byte, &w, 0);
		crc = bpf_htonl(~w.crc);
		__builtin_memcpy(out + (crc_at & (PPBPF_SEND_MAX - 1)), &crc, 4);
	}
	return at;
}

static const char v1_format4[] = "PROXY TCP4 %pI4 %pI4 %u %u\r\n";
static const char v1_format6[] = "PROXY TCP6 %pI6 %pI6 %u %u\r\n";

/* A v1 PROXY header from src to dst into out (PPBPF_SEND_MAX bytes). Returns its length, or 0. */
static __always_inline __u32 build_v1(__u8 *out, int v4, const struct ppbpf_endpoint *src,
				      const struct ppbpf_endpoint *dst)
{
	__u64 args[4] = { (__u64)(long)src->addr, (__u64)(long)dst->addr, src->port, dst->port };
	long n;

	if (v4)
		n = bpf_snprintf((char *)out, PPBPF_SEND_MAX, v1_format4, args, sizeof(args));
	else
		n = bpf_snprintf((char *)out, PPBPF_SEND_MAX, v1_format6, args, sizeof(args));
	/* n counts the NUL, which is not sent; a header that did not fit is none */
	return n > 1 && n <= PPBPF_SEND_MAX ? (__u32)n - 1 : 0;
}

/*
 * A connection that must start with a header and cannot get one (a full
 * sockhash) fails closed: marked, so that egress drops its data segments
 * (egress_allowed), and given a short user timeout, so that the application
 * sees ETIMEDOUT within about a second. Its own SO_MARK, if it had one, is
 * lost with it.
 */
static __always_inline void fail_closed(struct bpf_sock_ops *skops, struct ppbpf_send_sk *s)
{
	int mark = PPBPF_SEND_FAILED_MARK, ms = PPBPF_SEND_FAILED_TIMEOUT_MS;

	if (s) /* NULL: no memory for it either; egress then goes by the destination */
		WRITE_ONCE(s->state, SEND_FAILED);
	bpf_setsockopt(skops, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	bpf_setsockopt(skops, SOL_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
	count(PPBPF_CNT_SEND_NO_ROOM);
}

/* A socket whose header is built joins the sockhash, whose sk_msg program writes it on the first send. */
static __always_inline void join_sockhash(struct bpf_sock_ops *skops, struct ppbpf_send_sk *s)
{
	__u64 cookie = bpf_get_socket_cookie(skops);

	if (!s->len || bpf_sock_hash_update(skops, &send_socks, &cookie, BPF_NOEXIST)) {
		fail_closed(skops, s);
		return;
	}
	s->cookie = cookie;
	WRITE_ONCE(s->state, SEND_READY);
	/* called as each segment goes out (to size its options, which it leaves alone): see on_transmit */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

/*
 * sockops, a connection this cgroup opened is established: one whose header
 * PPBPF_RELAY built already, or whose remote port and address have an
 * outbound policy (its header is built now, from the socket's own
 * addresses), joins the sockhash. A connection that cannot (a full map) is
 * counted.
 */
static __always_inline void on_active_established(struct bpf_sock_ops *skops)
{
	__u16 port = bpf_ntohl(skops->remote_port) & 0xffff; /* the port sits in the upper half */
	struct ppbpf_endpoint local = {}, peer = {};
	struct bpf_sock *sk = skops->sk;
	struct ppbpf_send_policy *pol;
	struct ppbpf_send_sk *s;
	int v4;

	if (!sk)
		return;
	s = bpf_sk_storage_get(&send_sks, sk, 0, 0); /* no storage at all: one pointer read */
	if (s && READ_ONCE(s->state) == SEND_PREBUILT) {
		join_sockhash(skops, s);
		return;
	}
	if (!port_bit(&send_bits, port))
		return;
	pol = bpf_map_lookup_elem(&send_ports, &port);
	if (!pol)
		return;
	v4 = sockops_addrs(skops, local.addr, peer.addr);
	if (!send_to(port, v4, peer.addr))
		return;
	local.port = (__u16)skops->local_port;
	peer.port = port;
	s = bpf_sk_storage_get(&send_sks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s) {
		fail_closed(skops, NULL);
		return;
	}
	if (pol->version == 1) {
		s->len = build_v1(s->hdr, v4, &local, &peer);
	} else {
		struct v2_extras x = { .pol = pol, .flags = pol->flags };

		s->len = build_v2(s->hdr, v4, &local, &peer, &x);
	}
	join_sockhash(skops, s);
}

/* Has PPBPF_RELAY built this socket's header, to go out when it is connected? */
static __always_inline int has_relay_header(struct bpf_sock *sk)
{
	struct ppbpf_send_sk *s = bpf_sk_storage_get(&send_sks, sk, 0, 0);

	return s && READ_ONCE(s->state) == SEND_PREBUILT;
}

/*
 * cgroup/connect4 and connect6: a TCP Fast Open connect to a destination
 * that gets a header (or of a socket with a relayed one) is refused
 * (EPERM), counted. Fast Open puts the first
 * bytes in the SYN, before the socket can join the sockhash: they would go
 * out without the header. Both ways in are seen here: sendto(MSG_FASTOPEN)
 * has its request set, and connect() after TCP_FASTOPEN_CONNECT has the
 * option on (its SYN waits for the first write). Returns 1 to let it go on.
 */
static __always_inline int connect_allowed(struct bpf_sock_addr *ctx, int v4)
{
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	struct bpf_sock *sk = ctx->sk;
	struct tcp_sock *tp;
	__u8 addr[16] = {};

	if (ctx->protocol != IPPROTO_TCP || !sk)
		return 1;
	if (has_relay_header(sk))
		goto check;
	if (!port_bit(&send_bits, port))
		return 1;
	if (v4) {
		__u32 ip4 = ctx->user_ip4;

		__builtin_memcpy(addr, &ip4, 4);
	} else {
		__u32 ip6[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };

		v4 = norm_addr(AF_INET6, 0, ip6, addr);
	}
	if (!send_to(port, v4, addr))
		return 1;
check:
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp || (!BPF_CORE_READ(tp, fastopen_req) && !BPF_CORE_READ_BITFIELD_PROBED(tp, fastopen_connect)))
		return 1;
	count(PPBPF_CNT_SEND_FASTOPEN);
	return 0;
}

/*
 * sockops, a segment of the connection goes out (its options are sized;
 * none is added): once the header was written, the socket leaves the
 * sockhash. The send that wrote it is still running and holds the psock,
 * which goes when that send returns.
 */
static __always_inline void on_transmit(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ppbpf_send_sk *s = sk ? bpf_sk_storage_get(&send_sks, sk, 0, 0) : NULL;
	__u64 cookie;

	if (!s || READ_ONCE(s->state) != SEND_SENT)
		return;
	cookie = bpf_get_socket_cookie(skops);
	bpf_map_delete_elem(&send_socks, &cookie);
	WRITE_ONCE(s->state, SEND_RELEASED);
	count(PPBPF_CNT_SEND_RELEASED);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
	bpf_sk_storage_delete(&send_sks, sk); /* nothing looks at it any more */
}

/* Is a socket connected to a destination that gets a header (--send)? */
static __always_inline int to_send_destination(struct bpf_sock *sk)
{
	__u16 port = bpf_ntohs((__u16)sk->dst_port);
	__u32 r[4] = { sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3] };
	__u8 peer[16] = {};
	int v4;

	if (!port_bit(&send_bits, port))
		return 0;
	v4 = norm_addr(sk->family, sk->dst_ip4, r, peer);
	return send_to(port, v4, peer);
}

/*
 * cgroup_skb/egress: a data segment of a connection that failed closed
 * (fail_closed) is dropped; its ACKs, FIN and RST go. Every other segment
 * leaves after one compare: only such sockets carry the mark.
 */
static __always_inline int egress_allowed(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct ppbpf_send_sk *s;
	struct segment seg;

	if (skb->mark != PPBPF_SEND_FAILED_MARK || !sk)
		return PASS;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return PASS;
	s = bpf_sk_storage_get(&send_sks, sk, 0, 0);
	if (s ? READ_ONCE(s->state) != SEND_FAILED : !to_send_destination(sk))
		return PASS; /* an application's own mark of the same value */
	if (!read_segment(skb, &seg) && !seg.len)
		return PASS;
	count(PPBPF_CNT_SEND_DROPPED);
	return DROP;
}

/* Copy the header into the first len bytes of msg (pulled in already). Returns 0 or -1. */
static __always_inline int put_header(struct sk_msg_md *msg, const struct ppbpf_send_sk *s, __u32 len)
{
	__u8 *d = (void *)(long)msg->data, *end = (void *)(long)msg->data_end;

	for (__u32 i = 0; i < PPBPF_SEND_MAX; i++) {
		if (i >= len)
			return 0;
		if (d + i + 1 > end)
			return -1;
		d[i] = s->hdr[i];
	}
	return 0;
}

/*
 * sk_msg, a send on a socket of the sockhash: the first one gets the
 * header in front. Where it cannot be written, the send fails (SK_DROP:
 * EACCES to the application) and the next one tries again.
 */
static __always_inline int send_first_bytes(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	struct ppbpf_send_sk *s;
	__u32 len;

	if (!sk)
		return SK_PASS;
	s = bpf_sk_storage_get(&send_sks, sk, 0, 0);
	if (!s || READ_ONCE(s->state) != SEND_READY)
		return SK_PASS;
	len = s->len;
	if (!len || len > PPBPF_SEND_MAX)
		return SK_PASS;
	/* the pushed bytes are not initialized: after the push, any failure drops the send */
	if (bpf_msg_push_data(msg, 0, len, 0) || bpf_msg_pull_data(msg, 0, len, 0) || put_header(msg, s, len)) {
		count(PPBPF_CNT_SEND_FAILED);
		return SK_DROP;
	}
	WRITE_ONCE(s->state, SEND_SENT);
	count(PPBPF_CNT_SENT);
	trace_sent(sk, s);
	return SK_PASS;
}

#endif /* PPBPF_LIB_SEND_H */
