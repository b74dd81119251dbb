/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What the kernel side keeps in its maps: the per-socket record, its TLV
 * bytes, pending headers, and the headers that reach a listener. The records
 * shared with userspace are in include/ppbpf/abi.h.
 */
#ifndef PPBPF_LIB_STRUCTS_H
#define PPBPF_LIB_STRUCTS_H

#include <ppbpf/abi.h>
#include <ppbpf/parse.h>
#include "../assemble.h"
#include "consts.h"

/* What sockops keeps per tracked socket (SK_STORAGE). */
struct ppbpf_sk {
	struct ppbpf_info info; /* what PPBPF_INFO returns */
	__u32 rcv_start;        /* sequence number of the first stream byte */
	__u32 port_flags;       /* PPBPF_PORT_* at establishment (verdicts use the live policy) */
	__u32 max_header;       /* header size limit at establishment */
	__u32 tlv_count;        /* top-level TLVs in the header */
	__u32 stored;           /* extent of the socket's pending entry (small up to PPBPF_SMALL_MAX); 0: none */
	__u32 timeout_ms;       /* header timeout at establishment (the sweep prefers the live policy) */
	__u32 decided;          /* 1 once a verdict was claimed (claim_verdict) */
	__u32 reset_asked;      /* 1 once the sweep reset it or asked `ppbpf run` to: its close is a reset */
	__u32 busy;             /* 1 while one CPU takes in a segment of it (seg_trylock) */
	__u32 closing;          /* 1 once sockops saw it close: a pending entry stored after that is removed */
	__u32 revoked;          /* 1 once a verdict given was taken back (transparent: put in a sockmap) */
	__u8 af;
	__u8 peer_v4;           /* peer.addr is IPv4 (also a v4-mapped peer of a dual-stack socket) */
	struct ppbpf_endpoint local; /* the socket's own ends, for rejection events and live policy */
	struct ppbpf_endpoint peer;
	__u64 relay_token;      /* its key in relay_tokens once asked for (PPBPF_RELAY_TOKEN); 0: none */
};

/* Where an outgoing connection's header is (struct ppbpf_send_sk.state). */
enum send_state {
	SEND_READY = 1,    /* built at establishment: the first send writes it */
	SEND_SENT = 2,     /* written: the socket leaves the sockhash at its first acknowledgement */
	SEND_RELEASED = 3, /* out of the sockhash: sends no longer pass sk_msg */
	SEND_PREBUILT = 4, /* built by PPBPF_RELAY before the connection is: it joins the sockhash then */
	SEND_FAILED = 5,   /* it could not join the sockhash (full): its data is dropped at egress, and it times out */
};

/* The original client of an inbound socket, for PPBPF_RELAY (HASH "relay_tokens"). */
struct ppbpf_relay_src {
	struct ppbpf_endpoint src;
	struct ppbpf_endpoint dst;
	__u32 v4;
	__u32 tlv_len;       /* TLV bytes of its header kept here */
	__u8 tlvs[PPBPF_SEND_MAX]; /* the first PPBPF_RELAY_TLV_MAX; sized for masked offsets */
};

/* An outgoing connection's header, built by sockops or by PPBPF_RELAY (SK_STORAGE "send_sks"). */
struct ppbpf_send_sk {
	__u32 state; /* enum send_state */
	__u32 len;   /* header bytes */
	__u64 cookie; /* the socket's, set as it joins the sockhash (for trace events) */
	__u8 hdr[PPBPF_SEND_MAX + 512]; /* a TLV written at a masked offset stays inside */
};

/* The first info.tlv_stored TLV bytes of a socket's header, only for headers with TLVs. */
struct ppbpf_sk_tlvs {
	__u8 bytes[PPBPF_TLV_MAX];
};

/* A tracked socket's stream bytes while its header is incomplete (see assemble.h for the layout). */
struct ppbpf_pending {
	struct ppbpf_layout l;
	struct ppbpf_bpf_buf buf;
	__u8 slack[PPBPF_COPY_CHUNK]; /* a chunk copied at a masked offset stays inside */
};

/*
 * A short incomplete header (a pending entry of 296 bytes instead of 4.4 KB,
 * which the kernel would allocate as 8 KiB): parsed after a copy into the
 * per-CPU scratch.
 */
struct ppbpf_pending_small {
	struct ppbpf_layout l;
	__u8 bytes[PPBPF_SMALL_MAX + 1];
};

/* A connection not yet accepted by the kernel (no child socket yet): its 4-tuple. */
struct ppbpf_early_key {
	struct ppbpf_endpoint peer;
	struct ppbpf_endpoint local;
};

/*
 * A handshake's header bytes as its listener takes them in (deferred accept,
 * or data on the last ACK), and the verdict once they are whole, for sockops
 * to take when the kernel makes the child. Tied to the handshake by its
 * sequence numbers: an entry of an earlier connection on the same 4-tuple
 * never matches.
 */
struct ppbpf_early {
	__u32 start;   /* sequence number of the peer's first byte (its ISN + 1) */
	__u32 ack;     /* what the peer acknowledges: our ISN + 1 (the child's snd_una) */
	__u64 born_ns; /* when the first byte came: the sweep removes what no child took */
	__s32 rc;      /* the parse result under the policy once judged; PPBPF_E_INCOMPLETE before */
	__u32 busy;    /* 1 while one CPU takes in a segment of it */
	struct ppbpf_hdr hdr; /* the parsed header, once judged */
	struct ppbpf_pending bytes;
};

/* The flow maps take the same key as the listener's entries (ppbpf_flow_key, in abi.h, names it there). */
_Static_assert(sizeof(struct ppbpf_early_key) == sizeof(struct ppbpf_flow_key), "one 4-tuple layout");
_Static_assert(sizeof(((struct ppbpf_flow *)0)->hdr) == sizeof(struct ppbpf_hdr), "a flow holds one parsed header");

#endif /* PPBPF_LIB_STRUCTS_H */
