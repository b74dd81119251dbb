/* SPDX-License-Identifier: MIT */
/*
 * What the kernel side and userspace share: the getsockopt query ABI, the
 * connection table, the policy maps and the counters. Only __u* types, so
 * the BPF programs and C userspace compile the same layouts.
 *
 * The query ABI: getsockopt(fd, SOL_PPBPF, PPBPF_INFO, &info, &len) on any
 * socket of a cgroup where ppbpf is attached; no privileges, no map fds.
 *   0            info is filled in (len = sizeof(info));
 *   ENODATA      the socket is not tracked (its port has no policy, or the
 *                peer is not trusted there);
 *   EAGAIN       it will be tracked, but accept() returned it a few
 *                microseconds before the kernel side set it up: ask again;
 *   ENOPROTOOPT  ppbpf is not attached to this socket's cgroup;
 *   EINVAL       len < sizeof(struct ppbpf_info), or < PPBPF_TLVS_MIN for TLVs;
 *   ENOSPC       PPBPF_TLVS: more TLV bytes are kept (info.tlv_stored) than
 *                len has room for after the count (ask with PPBPF_TLVS_SIZE).
 * PPBPF_TLVS returns a __u32 count (host order) followed by that many raw
 * TLV bytes kept for the socket (info.tlv_stored). A buffer of
 * PPBPF_TLVS_SIZE bytes always does; one of PPBPF_TLVS_MIN does where at most
 * the default cap is kept. The count makes the answer never empty: the kernel
 * does not pass a zero optlen from a getsockopt program back to the caller.
 */
#ifndef PPBPF_ABI_H
#define PPBPF_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* getsockopt level for the query ABI: far from the kernel's SOL_* numbers. */
#define SOL_PPBPF 0x5050
/* Optname: struct ppbpf_info. */
#define PPBPF_INFO 1
/* Optname: the raw v2 TLV bytes kept for the socket. */
#define PPBPF_TLVS 2
/*
 * Optname (getsockopt, an inbound socket whose header was accepted): a
 * __u64 token that lets setsockopt(PPBPF_RELAY) on another socket relay this
 * socket's original client. The same token while the socket is open; gone
 * when it closes. ENODATA: no client to relay (not tracked, a plain or
 * rejected socket, a LOCAL header, a non-TCP family); EAGAIN: the header is
 * still pending; ENOSPC: the token table is full; EINVAL: len < 8.
 */
#define PPBPF_RELAY_TOKEN 3
/*
 * Optname (setsockopt, an outgoing TCP socket, before connect() or before
 * its first send): struct ppbpf_relay. The socket's first bytes on the wire
 * become a PROXY header with the token's original source and destination.
 * ENOENT: no such token (its socket closed); EALREADY: the socket has sent
 * bytes already; EISCONN: connected, and not a --send destination (call it
 * before connect()); EINVAL: a short optlen or unknown flags; ENOMEM: no
 * room for the header (also a --send socket that found the sockhash full
 * and fails closed).
 */
#define PPBPF_RELAY 4
/* struct ppbpf_relay.flags */
#define PPBPF_RELAY_V1 0x1        /* a v1 (text) header; else v2 */
#define PPBPF_RELAY_TLVS 0x2      /* v2: the inbound header's TLVs (not CRC32C or NOOP), up to PPBPF_RELAY_TLV_MAX bytes */
#define PPBPF_RELAY_UNIQUE_ID 0x4 /* v2: a UNIQUE_ID TLV of the kernel's, unless a relayed TLV is one */
#define PPBPF_RELAY_CRC32C 0x8    /* v2: a CRC32C TLV over the new header */
#define PPBPF_RELAY_FLAGS 0xf
/* Most TLV bytes relayed: whole TLVs beyond it are left out. */
#define PPBPF_RELAY_TLV_MAX 384

struct ppbpf_relay {
	__u64 token; /* from getsockopt(in_fd, SOL_PPBPF, PPBPF_RELAY_TOKEN) */
	__u32 flags; /* PPBPF_RELAY_* */
	__u32 pad;   /* zero */
};

/* Version of struct ppbpf_info; grows only by appending fields. */
#define PPBPF_ABI_VERSION 1

/* Most TLV bytes kept per socket; the configured cap (default 512) is at most this. */
#define PPBPF_TLV_MAX 1024
/* Room a PPBPF_TLVS answer needs: the count, then the bytes. */
#define PPBPF_TLVS_SIZE (4 + PPBPF_TLV_MAX)
/* Default cap on TLV bytes kept per socket. */
#define PPBPF_TLV_CAP_DEFAULT 512
/* Least room a PPBPF_TLVS answer takes: enough for the default cap (fits Python's 1024-byte limit). */
#define PPBPF_TLVS_MIN (4 + PPBPF_TLV_CAP_DEFAULT)

/* Most ports with a policy, and most trusted blocks per address family, the kernel side holds. */
#define PPBPF_PORTS_MAX 1024
#define PPBPF_TRUST_MAX 16384

/* Where a tracked socket's header stands. */
enum ppbpf_state {
	PPBPF_STATE_NONE = 0,    /* never reported by the query: untracked sockets give ENODATA */
	PPBPF_STATE_PENDING = 1, /* header not complete yet */
	PPBPF_STATE_DONE = 2,    /* header parsed; fields valid */
	PPBPF_STATE_ERROR = 3,   /* rejected (invalid header, timeout, ...): error says why; being reset */
	PPBPF_STATE_PLAIN = 4,   /* no header where one is optional: a plain connection */
};

/* struct ppbpf_info.flags */
#define PPBPF_INFO_TLV_TRUNCATED 0x1 /* TLVs longer than the cap; the first tlv_stored bytes are kept */
#define PPBPF_INFO_REWRITE_PEER 0x2  /* getpeername()/accept() return the original source */
#define PPBPF_INFO_REMOVED 0x4       /* transparent mode: the kernel took the header out of the stream */

/* A socket's header as the kernel saw it. */
struct ppbpf_info {
	__u16 abi;        /* PPBPF_ABI_VERSION */
	__u16 size;       /* sizeof(struct ppbpf_info) as the kernel side knows it */
	__u8 state;       /* enum ppbpf_state */
	__u8 version;     /* 1 or 2 (DONE) */
	__u8 command;     /* PPBPF_CMD_PROXY or PPBPF_CMD_LOCAL */
	__u8 family;      /* enum ppbpf_family */
	__s32 error;      /* PPBPF_E_* when state is ERROR */
	__u32 header_len; /* bytes the header takes at the start of the stream */
	__u32 have;       /* stream bytes seen so far (PENDING) */
	__u32 need;       /* at least this many more bytes (PENDING) */
	__u32 flags;      /* PPBPF_INFO_* */
	__u16 src_port;   /* original source, host order */
	__u16 dst_port;   /* original destination, host order */
	__u8 src_addr[16]; /* network order; IPv4 in the first 4 bytes */
	__u8 dst_addr[16];
	__u32 tlv_len;    /* TLV bytes in the header */
	__u32 tlv_stored; /* TLV bytes kept, returned by PPBPF_TLVS */
	__u64 cookie;     /* socket cookie: the key of the connection table */
	__u64 established_ns; /* CLOCK_MONOTONIC when the connection was established */
	__u64 done_ns;    /* CLOCK_MONOTONIC when the header was complete, else 0 */
};

/* One end of a TCP connection, as every map and event keeps it. */
struct ppbpf_endpoint {
	__u8 addr[16]; /* network order; IPv4 in the first 4 bytes */
	__u16 port;    /* host order */
};

/* One connection of the table (`ppbpf list`, `bpftool map dump pinned .../conns`). */
struct ppbpf_conn {
	__u64 established_ns; /* CLOCK_MONOTONIC */
	__u64 done_ns;        /* header complete, or 0 */
	__u8 state;           /* enum ppbpf_state */
	__u8 version;
	__u8 command;
	__u8 family;          /* enum ppbpf_family of the header */
	__u8 af;              /* AF_INET or AF_INET6: the socket's own family */
	__u8 n_tlvs;          /* TLVs in the header (counted up to 255) */
	__s16 error;          /* PPBPF_E_* when state is ERROR */
	__u32 header_len;
	struct ppbpf_endpoint local; /* the socket's own end */
	struct ppbpf_endpoint peer;  /* the socket's peer: the balancer */
	struct ppbpf_endpoint src;   /* original endpoints from the header */
	struct ppbpf_endpoint dst;
	__u8 tlv_types[8];    /* the first TLV types, a summary */
};

/* struct ppbpf_port_policy.flags */
#define PPBPF_PORT_REWRITE_PEER 0x1     /* getpeername4/6 return the original source */
#define PPBPF_PORT_OPTIONAL 0x2         /* trusted peers may send no header: a plain connection */
#define PPBPF_PORT_REJECT_UNTRUSTED 0x4 /* untrusted peers are reset (else: left plain) */
#define PPBPF_PORT_NO_V1 0x8            /* v1 headers are refused */
#define PPBPF_PORT_NO_V2 0x10           /* v2 headers are refused */
#define PPBPF_PORT_LOCAL_UID 0x20       /* a trusted peer on this host must be local_uid's socket */
#define PPBPF_PORT_TRANSPARENT 0x40     /* the header is taken out of the stream at tc (sequence shift) */

/* Default header timeout, ms: the spec's advice, and HAProxy's habit. */
#define PPBPF_TIMEOUT_DEFAULT_MS 3000

/* Policy for one local port (key: the port, host order, __u16). */
struct ppbpf_port_policy {
	__u32 flags;      /* PPBPF_PORT_* */
	__u32 max_header; /* largest header accepted, bytes */
	__u32 timeout_ms; /* a header still incomplete this long after the handshake is reset; 0: never */
	__u32 local_uid;  /* with PPBPF_PORT_LOCAL_UID: a peer on this host must be a socket of this user */
};

/* struct ppbpf_send_policy.flags: TLVs of a v2 header besides AUTHORITY and ALPN */
#define PPBPF_SEND_CRC32C 0x1    /* a CRC32C TLV (last), over the whole header */
#define PPBPF_SEND_UNIQUE_ID 0x2 /* a UNIQUE_ID TLV: 32 random hex digits per connection */
#define PPBPF_SEND_AUTHORITY_MAX 255
#define PPBPF_SEND_ALPN_MAX 64

/*
 * The sending side: connections that processes of the cgroup open to a
 * remote port with an outbound policy (HASH "send_ports", key: the port,
 * host order, __u16; bitmap "send_bits", one bit per such port), to one of
 * its destinations (LPM tries "send_to4"/"send_to6", keyed as the trust
 * tries below: the remote port, then the address; /0 for any), get a PROXY
 * header as their first bytes, written by the kernel (sk_msg).
 */
struct ppbpf_send_policy {
	__u8 version;       /* 1 or 2 */
	__u8 authority_len; /* v2: an AUTHORITY TLV of these bytes (0: none) */
	__u8 alpn_len;      /* v2: an ALPN TLV of these bytes (0: none) */
	__u8 pad;
	__u32 flags;        /* PPBPF_SEND_* */
	__u8 authority[PPBPF_SEND_AUTHORITY_MAX];
	__u8 alpn[PPBPF_SEND_ALPN_MAX];
};

/* Trusted sources, per port: an LPM key over the port and then the address. */
struct ppbpf_trust4_key {
	__u32 prefixlen; /* 16 (the port) + the CIDR's length */
	__u16 port;      /* network order, so the port leads the matched bits */
	__u8 addr[4];
	__u8 pad[2];     /* zero */
};
struct ppbpf_trust6_key {
	__u32 prefixlen;
	__u16 port;
	__u8 addr[16];
	__u8 pad[2];     /* zero */
};

/* Bits of a trust key before the address: the port. */
#define PPBPF_TRUST_PORT_BITS 16

/* Kernel-side rejections, reported in ppbpf_info.error like parser statuses. */
#define PPBPF_E_NO_ROOM (-32)   /* no room to track the connection (a map was full) */
#define PPBPF_E_VERSION (-33)   /* a valid header of a version the port refuses */
#define PPBPF_E_TIMEOUT (-34)   /* the header was not complete within the port's timeout */
#define PPBPF_E_UNTRUSTED (-35) /* an untrusted peer on a port that rejects them */
#define PPBPF_E_CHANGED (-36)   /* a resent segment changed header bytes already taken in */
#define PPBPF_E_UNSHIFTED (-37) /* transparent port: the connection's handshake was not seen at tc */
#define PPBPF_E_SOCKMAP (-38)   /* transparent port: the application put the socket in a sockmap */
/* The last kernel-side rejection code. */
#define PPBPF_E_KERNEL_LAST PPBPF_E_SOCKMAP

/* A rejected connection, sent on the RINGBUF "events" to `ppbpf run`. */
struct ppbpf_event {
	__u64 ts_ns;          /* CLOCK_MONOTONIC of the rejection */
	__u64 cookie;         /* socket cookie */
	__s32 error;          /* why: a parser status or a PPBPF_E_* above */
	__u32 have;           /* stream bytes seen before the verdict */
	__u8 af;              /* AF_INET or AF_INET6: the socket's own family */
	__u8 pad;
	struct ppbpf_endpoint local;
	struct ppbpf_endpoint peer;
	__u16 pad2;
};

/* Where a transparent flow is (struct ppbpf_flow.state). */
enum ppbpf_flow_state {
	FLOW_CAPTURING = 0, /* the header is coming in: its bytes are taken in, the handshake held */
	FLOW_SHIFTING = 1,  /* judged and accepted (or none, on an optional port): every segment is shifted */
	FLOW_REJECTED = 2,  /* judged and refused, or timed out: each segment resets the handshake */
	FLOW_DEAD = 3,      /* being removed by the sweep: a SYN on its 4-tuple is dropped (sent again) */
};

/* A transparent flow's 4-tuple: the key of the map "flows". */
struct ppbpf_flow_key {
	struct ppbpf_endpoint peer;  /* the client (the balancer) */
	struct ppbpf_endpoint local; /* the server's end */
};

/*
 * A transparent port's connection (HASH map "flows"): how far the client's
 * sequence numbers are shifted below the server's.
 */
struct ppbpf_flow {
	__u32 start;       /* the client's first byte: its ISN + 1 */
	__u32 off;         /* header bytes under the server's sequence space: those taken in, then the header */
	__u32 state;       /* enum ppbpf_flow_state */
	__u32 busy;        /* 1 while one CPU takes in a header segment */
	__u64 born_ns;     /* when the SYN came */
	__u64 deadline_ns; /* a header still incomplete then is refused (0: never) */
	__u64 closed_ns;   /* when the server socket closed (0: open); swept after TIME_WAIT */
	__u64 cookie;      /* the server socket's, once sockops made its record */
	__s32 error;       /* why, once REJECTED */
	__u8 family;       /* the server socket's own family, once sockops made its record */
	__u8 pad[3];
	/*
	 * The verdict, for sockops to record with the child: kept here, so that
	 * a header without TLVs needs no other entry (one with TLVs keeps its
	 * bytes in "flow_hdrs" until then).
	 */
	__s32 rc;          /* the parse result under the policy (PPBPF_E_INCOMPLETE until judged) */
	__u32 have;        /* stream bytes taken in when it was judged */
	__u8 hdr[64] __attribute__((aligned(8))); /* the parsed header: the parser's struct ppbpf_hdr */
};

/* Settings for the whole attachment (ARRAY map "settings", one entry). */
struct ppbpf_config {
	__u32 tlv_cap; /* TLV bytes kept per socket, at most PPBPF_TLV_MAX */
	__u32 pad;
};

/*
 * Live tracing (`ppbpf trace`): the kernel writes struct ppbpf_trace_event to
 * the RINGBUF "trace" only while trace_ctl's one entry names a tracer. It is
 * a ring of its own: the daemon's "events" (its work, the rejections to
 * reset) are never shared with a reader that may be slow or paused.
 */
struct ppbpf_trace_ctl {
	__u32 pid;      /* the tracing process (0: nobody traces; nothing is written) */
	__u32 pad;
	__u64 since_ns; /* CLOCK_MONOTONIC when it started */
};

/* What happened (struct ppbpf_trace_event.kind). */
enum ppbpf_trace_kind {
	PPBPF_TRACE_PARSED = 1,   /* a header accepted: the record holds it (annotate mode) */
	PPBPF_TRACE_SHIFTED = 2,  /* a header accepted and taken out of the stream (transparent mode) */
	PPBPF_TRACE_PLAIN = 3,    /* no header, on a port where it is optional */
	PPBPF_TRACE_REJECTED = 4, /* refused: error says why (PPBPF_E_TIMEOUT: the header came too late) */
	PPBPF_TRACE_CLOSED = 5,   /* a tracked socket closed: state is where its header stood */
	PPBPF_TRACE_SENT = 6,     /* the sending side wrote a header: data holds it as sent */
};

/* Bytes of a trace event's data: TLVs of an accepted header, or a sent header. */
#define PPBPF_TRACE_DATA 512

/* One event of the RINGBUF "trace". */
struct ppbpf_trace_event {
	__u64 ts_ns;      /* CLOCK_MONOTONIC */
	__u64 cookie;     /* the socket's (0: a transparent handshake refused before a socket was made) */
	__s32 error;      /* REJECTED: a parser status or a PPBPF_E_* */
	__u32 header_len; /* PARSED, SHIFTED: the header's bytes */
	__u32 have;       /* stream bytes seen when it was judged */
	__u8 kind;        /* enum ppbpf_trace_kind */
	__u8 af;          /* AF_INET or AF_INET6: the socket's own family */
	__u8 state;       /* enum ppbpf_state of the record */
	__u8 version;     /* PARSED, SHIFTED: 1 or 2 */
	__u8 command;     /* PARSED, SHIFTED: PPBPF_CMD_* */
	__u8 family;      /* PARSED, SHIFTED: enum ppbpf_family of the addresses src and dst */
	__u16 data_len;   /* bytes of data */
	struct ppbpf_endpoint local; /* the socket's own end */
	struct ppbpf_endpoint peer;  /* its peer: the balancer (SENT: where the header went) */
	struct ppbpf_endpoint src;   /* PARSED, SHIFTED: original endpoints from the header */
	struct ppbpf_endpoint dst;
	__u8 data[PPBPF_TRACE_DATA]; /* PARSED, SHIFTED: the first TLV bytes kept; SENT: the header */
};

/* Counters (PERCPU_ARRAY "stats"), summed by `ppbpf status`. */
enum ppbpf_counter {
	PPBPF_CNT_TRACKED,      /* connections tracked on a policy port */
	PPBPF_CNT_UNTRUSTED,    /* connections from an untrusted peer, left plain */
	PPBPF_CNT_V1,           /* v1 headers parsed */
	PPBPF_CNT_V2,           /* v2 headers parsed */
	PPBPF_CNT_LOCAL,        /* v2 LOCAL headers */
	PPBPF_CNT_UNKNOWN,      /* v1 UNKNOWN or v2 UNSPEC: real peer kept */
	PPBPF_CNT_NOT_PROXY,    /* the stream did not start with a header */
	PPBPF_CNT_PLAIN,        /* no header on an optional port */
	PPBPF_CNT_ERR_V1,       /* malformed v1 headers */
	PPBPF_CNT_ERR_V2,       /* malformed v2 headers (CRC, TLVs, fields) */
	PPBPF_CNT_ERR_TOO_LARGE, /* headers over the size limit */
	PPBPF_CNT_PENDING,      /* headers still incomplete after a segment (events, not connections) */
	PPBPF_CNT_SEGMENTS,     /* header segments copied in sequence */
	PPBPF_CNT_OUT_OF_ORDER, /* segments ahead of the next expected byte, ignored */
	PPBPF_CNT_RETRANSMIT,   /* segments with nothing new, ignored */
	PPBPF_CNT_HANDOFF,      /* header bytes that arrived on the listener (deferred accept) */
	PPBPF_CNT_TLV_TRUNCATED, /* TLVs longer than the cap */
	PPBPF_CNT_REWRITES,     /* getpeername answers rewritten */
	PPBPF_CNT_QUERIES,      /* PPBPF_INFO / PPBPF_TLVS answered */
	PPBPF_CNT_NO_MEMORY,    /* records or table entries that could not be created */
	PPBPF_CNT_CLOSED,       /* tracked connections closed */
	PPBPF_CNT_REJECTED,     /* connections rejected, every reason */
	PPBPF_CNT_REJ_UNTRUSTED, /* rejected: untrusted peer on a port that rejects them */
	PPBPF_CNT_REJ_VERSION,  /* rejected: header version refused by the port */
	PPBPF_CNT_REJ_TIMEOUT,  /* rejected: header incomplete at the timeout */
	PPBPF_CNT_REJ_NO_ROOM,  /* rejected: the connection or pending table was full */
	PPBPF_CNT_HELD,         /* segments held back (dropped, to be resent) while a header is incomplete */
	PPBPF_CNT_DROPPED,      /* segments of rejected connections dropped */
	PPBPF_CNT_RESETS,       /* rejected connections reset by the sweep */
	PPBPF_CNT_EVENTS_LOST,  /* rejection events lost: the ring buffer was full */
	PPBPF_CNT_TIMEOUT_PLAIN, /* optional ports: nothing sent within the timeout, left plain */
	PPBPF_CNT_UNDECODABLE,  /* segments of a pending header ingress could not decode: held back */
	PPBPF_CNT_NO_HANDSHAKE, /* listener segments with header bytes but no handshake behind them: dropped */
	PPBPF_CNT_BUSY,         /* segments dropped while another CPU took in one of the same connection */
	PPBPF_CNT_REVOKED,      /* pending headers not honoured: the port's policy or the peer's trust changed */
	PPBPF_CNT_REJ_CHANGED,  /* rejected: a resent segment changed header bytes already taken in */
	PPBPF_CNT_BEFORE_SETUP, /* data segments that reached a child before sockops set it up: dropped, resent */
	PPBPF_CNT_T_FLOWS,      /* transparent: flows whose header was taken out of the stream */
	PPBPF_CNT_T_HELD_ACKS,  /* transparent: handshake ACKs held until the header came */
	PPBPF_CNT_T_RESETS,     /* transparent: handshakes reset (a rejected header, or the timeout) */
	PPBPF_CNT_T_NO_ROOM,    /* transparent: SYNs dropped, the flow table was full */
	PPBPF_CNT_T_FASTOPEN,   /* transparent: SYNs with data (TCP Fast Open) refused */
	PPBPF_CNT_T_SIGNED,     /* transparent: SYNs with TCP-MD5 or TCP-AO refused (they sign seq and ack) */
	PPBPF_CNT_T_SOCKMAP,    /* transparent: connections reset, their application put them in a sockmap */
	PPBPF_CNT_T_LATE_PLAIN, /* transparent: no header after bytes were taken in (optional port): reset */
	PPBPF_CNT_SENT,         /* sending side: headers written before a connection's first bytes */
	PPBPF_CNT_SEND_FAILED,  /* sending side: first sends failed (EACCES), the header could not be written */
	PPBPF_CNT_SEND_RELEASED, /* sending side: sockets out of the sockhash, their header sent with a segment */
	PPBPF_CNT_SEND_NO_ROOM, /* sending side: connections that could get no header (a full map): they fail closed */
	PPBPF_CNT_SEND_FASTOPEN, /* sending side: TCP Fast Open connects to a --send destination refused (EPERM) */
	PPBPF_CNT_RELAY_TOKENS, /* relay: tokens handed out for inbound sockets (PPBPF_RELAY_TOKEN) */
	PPBPF_CNT_RELAYED,      /* relay: outgoing sockets given a relayed header (PPBPF_RELAY) */
	PPBPF_CNT_RELAY_REFUSED, /* relay: PPBPF_RELAY calls refused (a bad token, a socket that sent already, ...) */
	PPBPF_CNT_SEND_DROPPED, /* sending side: data segments dropped at egress, their connection had no header (send_no_room) */
	PPBPF_CNT_CLOSED_UNREAD, /* pending headers' segments let through to a socket its application closed: reset */
	PPBPF_CNT_TRACE_LOST,   /* trace events lost: `ppbpf trace` read too slowly and its ring buffer was full */
	PPBPF_CNT_MAX,
};

#endif /* PPBPF_ABI_H */
