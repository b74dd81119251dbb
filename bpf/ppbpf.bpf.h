/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* ppbpf's kernel side: constants, per-socket state and maps (katran-style: one place). */
#ifndef PPBPF_BPF_H
#define PPBPF_BPF_H

#include <ppbpf/abi.h>
#include <ppbpf/parse.h>

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
	__u32 port_flags;       /* PPBPF_PORT_* at establishment */
	__u32 max_header;       /* header size limit at establishment */
	__u32 tlv_count;        /* top-level TLVs in the header */
	__u32 stored;           /* bytes in the socket's pending entry (small up to PPBPF_SMALL_MAX); 0: none */
	__u32 timeout_ms;       /* header timeout at establishment (the sweep prefers the live policy) */
	__u32 decided;          /* 1 once a verdict was claimed (claim_verdict) */
	__u32 reset_asked;      /* 1 once the sweep reset it or asked `ppbpf run` to: its close is a reset */
	__u16 local_port;       /* the socket's own endpoints, for rejection events */
	__u16 peer_port;
	__u8 af;
	__u8 pad[3];
	__u8 local_addr[16];
	__u8 peer_addr[16];
};

/* The first info.tlv_stored TLV bytes of a socket's header, only for headers with TLVs. */
struct ppbpf_sk_tlvs {
	__u8 bytes[PPBPF_TLV_MAX];
};

/* A tracked socket's stream bytes while its header is incomplete. */
struct ppbpf_pending {
	__u32 have; /* bytes in buf */
	__u32 pad;
	struct ppbpf_bpf_buf buf;
	__u8 slack[PPBPF_COPY_CHUNK]; /* a chunk copied at a masked offset stays inside */
};

/* A connection not yet accepted by the kernel (no child socket yet), by its peer and local port. */
struct ppbpf_early_key {
	__u8 peer_addr[16]; /* IPv4 in the first 4 bytes */
	__u16 peer_port;    /* host order */
	__u16 local_port;
};

/* Header bytes a listener took in over several segments (deferred accept and a split header). */
struct ppbpf_early {
	__u32 seq; /* sequence number of the first byte */
	__u32 pad;
	struct ppbpf_pending bytes;
};

/* Most bytes a small pending entry keeps: what a partial header almost always is. */
#define PPBPF_SMALL_MAX 248

/*
 * A short incomplete header (a pending entry of 256 bytes instead of 4.4 KB,
 * which the kernel would allocate as 8 KiB): parsed after a copy into the
 * per-CPU scratch.
 */
struct ppbpf_pending_small {
	__u32 have;
	__u32 pad;
	__u8 bytes[PPBPF_SMALL_MAX];
};

/* Header bytes a listener saw before the child socket existed, for sockops to pick up. */
struct ppbpf_handoff {
	__u32 valid;
	__u16 local_port; /* host order */
	__u16 peer_port;  /* host order */
	__u8 peer_addr[16]; /* IPv4 in the first 4 bytes */
	__s32 rc;         /* the parse result under the port's policy */
	__u32 early;      /* 1: the bytes are in the `early` entry of this connection, not below */
	struct ppbpf_hdr hdr; /* the parsed header */
	struct ppbpf_early e; /* where the bytes start and the bytes; inserted into `early` if incomplete */
};

/* Split headers that reach a listener, until complete; LRU: a peer that never finishes is evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, struct ppbpf_early_key);
	__type(value, struct ppbpf_early);
} early SEC(".maps");

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

/* Listener-to-sockops hand-off, per CPU: both run in the same softirq for one segment. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_handoff);
} handoff SEC(".maps");

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
