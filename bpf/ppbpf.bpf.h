/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* ppbpf's kernel side: constants, per-socket state and maps (katran-style: one place). */
#ifndef PPBPF_BPF_H
#define PPBPF_BPF_H

#include <ppbpf/abi.h>
#include <ppbpf/parse.h>
#include "assemble.h"

/* Largest header the kernel side parses: the parser's BPF buffer. */
#define PPBPF_MAX_HEADER PPBPF_BPF_BUF_SIZE
/* Bytes copied from a packet per bpf_skb_load_bytes() call. */
#define PPBPF_COPY_CHUNK 256
/* Calls needed to copy a whole buffer. */
#define PPBPF_COPY_CALLS (PPBPF_MAX_HEADER / PPBPF_COPY_CHUNK)
/* Default capacity of the connection table (the loader may change it before load). */
#define PPBPF_CONNS_DEFAULT 65536
/* Most connections whose header is incomplete at once. */
#define PPBPF_PENDING_MAX 65536

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define ENODATA 61
#define EAGAIN 11
#define EINVAL 22
#define ENOPROTOOPT 92
#define TCP_ESTABLISHED 1
#define TCP_CLOSE_WAIT 8
#define NSEC_PER_MSEC 1000000ULL

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
	__u16 local_port;       /* the socket's own endpoints, for rejection events and live policy */
	__u16 peer_port;
	__u8 af;
	__u8 peer_v4;           /* peer_addr is IPv4 (also a v4-mapped peer of a dual-stack socket) */
	__u8 pad[2];
	__u8 local_addr[16];
	__u8 peer_addr[16];
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

/* A connection not yet accepted by the kernel (no child socket yet): its 4-tuple. */
struct ppbpf_early_key {
	__u8 peer_addr[16];  /* IPv4 in the first 4 bytes */
	__u8 local_addr[16];
	__u16 peer_port;     /* host order */
	__u16 local_port;
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

/* Most bytes a small pending entry keeps: what a partial header almost always is (masked: 0xff). */
#define PPBPF_SMALL_MAX 255

/*
 * A short incomplete header (a pending entry of 296 bytes instead of 4.4 KB,
 * which the kernel would allocate as 8 KiB): parsed after a copy into the
 * per-CPU scratch.
 */
struct ppbpf_pending_small {
	struct ppbpf_layout l;
	__u8 bytes[PPBPF_SMALL_MAX + 1];
};

/*
 * Headers that reach a listener, by 4-tuple, until sockops takes them with
 * the child; only for handshakes the kernel has (a request socket, or a valid
 * SYN cookie). LRU, and the sweep removes entries no child took.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, struct ppbpf_early_key);
	__type(value, struct ppbpf_early);
} early SEC(".maps");

/*
 * Verdicts on whole headers that reached a listener with no handshake the
 * kernel has (a SYN cookie's ACK, a fast open SYN), until sockops takes them;
 * apart from `early`, so that segments spoofing a trusted source take no
 * room from real handshakes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, struct ppbpf_early_key);
	__type(value, struct ppbpf_early);
} early_nohs SEC(".maps");

/* Where a listener assembles the first bytes of a handshake before they go into `early` (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_early);
} scratch_early SEC(".maps");

/* Rejections for `ppbpf run` to log (it resets the sockets from a socket iterator). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Per-socket record. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ppbpf_sk);
} ppbpf_sks SEC(".maps");

/* TLV bytes per socket, apart from the record so that headers without TLVs cost less. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ppbpf_sk_tlvs);
} ppbpf_tlvs SEC(".maps");

/* Incomplete headers, by socket cookie; an entry lives until the header is judged. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PPBPF_PENDING_MAX);
	__type(key, __u64);
	__type(value, struct ppbpf_pending);
} pending SEC(".maps");

/* Short incomplete headers (at most PPBPF_SMALL_MAX bytes), by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PPBPF_PENDING_MAX);
	__type(key, __u64);
	__type(value, struct ppbpf_pending_small);
} pending_small SEC(".maps");

/* Where a small pending entry is assembled before it is stored (per CPU, as `scratch`). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_pending_small);
} scratch_small SEC(".maps");

/*
 * Where ingress parses a header that arrives in one segment, without a
 * pending entry; inserted as the entry when the header is incomplete. Per CPU
 * is safe: the ingress hook runs in softirq, which does not nest.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_pending);
} scratch SEC(".maps");

/* Connection table, by socket cookie: `ppbpf list`, `bpftool map dump`. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PPBPF_CONNS_DEFAULT);
	__type(key, __u64);
	__type(value, struct ppbpf_conn);
} conns SEC(".maps");

/* Policy by local port (host order). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, struct ppbpf_port_policy);
} ports SEC(".maps");

/* One bit per local port with a policy: the ingress fast path, an inlined array read. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536 / 64);
	__type(key, __u32);
	__type(value, __u64);
} port_bits SEC(".maps");

/* One bit per local port with --rewrite-peer: getpeername leaves at once for the others. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536 / 64);
	__type(key, __u32);
	__type(value, __u64);
} rewrite_bits SEC(".maps");

/* Trusted IPv4 sources per port. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct ppbpf_trust4_key);
	__type(value, __u8);
} trust4 SEC(".maps");

/* Trusted IPv6 sources per port. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct ppbpf_trust6_key);
	__type(value, __u8);
} trust6 SEC(".maps");

/* Settings, struct ppbpf_config (one entry). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_config);
} settings SEC(".maps");

/* Counters, enum ppbpf_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PPBPF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

#endif /* PPBPF_BPF_H */
