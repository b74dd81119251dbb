/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The kernel side's constants: sizes and limits, ingress's answers, and kernel numbers. */
#ifndef PPBPF_LIB_CONSTS_H
#define PPBPF_LIB_CONSTS_H

#include <ppbpf/target.h>

/* ---- sizes and limits ------------------------------------------------------------------------ */

/* Largest header the kernel side parses: the parser's BPF buffer. */
#define PPBPF_MAX_HEADER PPBPF_BPF_BUF_SIZE
/* Bytes copied from a packet per bpf_skb_load_bytes() call. */
#define PPBPF_COPY_CHUNK 256
/* Calls needed to copy a whole buffer. */
#define PPBPF_COPY_CALLS (PPBPF_MAX_HEADER / PPBPF_COPY_CHUNK)
/* Default capacity of the connection table (the loader may change it before load). */
#define PPBPF_CONNS_DEFAULT 65536
/* Default capacity of the transparent flow table (connections and TIME_WAIT, on transparent ports). */
#define PPBPF_FLOWS_DEFAULT 65536
/* Most connections whose header is incomplete at once. */
#define PPBPF_PENDING_MAX 65536
/* Most bytes a small pending entry keeps: what a partial header almost always is (masked: 0xff). */
#define PPBPF_SMALL_MAX 255
/*
 * Largest header the sending side writes (v1: 107 bytes; v2: 52, and its TLVs:
 * AUTHORITY 3 + 255, ALPN 3 + 64, UNIQUE_ID 3 + 32, CRC32C 7), a power of 2.
 */
#define PPBPF_SEND_MAX 512
/* Sockets waiting for their first send at once (the sockhash the sk_msg program runs for). */
#define PPBPF_SEND_SOCKS 65536
/*
 * A connection that should send a header and cannot (a full sockhash) gets
 * this socket mark, so that egress finds its segments with one compare, and
 * this user timeout, so that it fails (ETIMEDOUT) instead of hanging.
 */
#define PPBPF_SEND_FAILED_MARK 0x50504246 /* "PPBF" */
#define PPBPF_SEND_FAILED_TIMEOUT_MS 1000
/* Inbound sockets holding a relay token at once (PPBPF_RELAY_TOKEN). */
#define PPBPF_RELAY_TOKENS 65536
/* 64-bit words of a per-port bitmap: one bit for each of the 65536 ports. */
#define PORT_BITMAP_WORDS (65536 / 64)
/* IPv6 extension headers a segment may carry before TCP, at most. */
#define IPV6_EXT_MAX 4
/* Longer than any handshake lives (SYN-ACK retries): a listener entry this old no child will take. */
#define EARLY_TTL_NS (75ULL * 1000 * NSEC_PER_MSEC)

/* ---- what ingress does with a segment -------------------------------------------------------- */

#define PASS 1
#define DROP 0 /* TCP has not acknowledged the segment: the peer sends it again */

/* ---- what tc does with a packet -------------------------------------------------------------- */

#define TC_NEXT (-1) /* TC_ACT_UNSPEC: on to the next filter (tcx: TCX_NEXT) */
#define TC_DROP 2    /* TC_ACT_SHOT (tcx: TCX_DROP) */
/* Where tc sees the IP header: after the Ethernet header (Ethernet devices and loopback only). */
#define TC_L3 14
/* Field offsets in the TCP header. */
#define TCP_SEQ_AT 4
#define TCP_ACK_AT 8
#define TCP_FLAGS_AT 12 /* the 16-bit word of the data offset and the flags */
#define TCP_CSUM_AT 16
#define TCP_OPTS_AT 20
/* TCP option kinds: SACK, and the two that sign sequence numbers. */
#define TCPOPT_SACK 5
#define TCPOPT_TIMESTAMP 8
#define TCPOPT_MD5SIG 19
#define TCPOPT_AO 29
/* bpf_l4_csum_replace flags (vmlinux.h has the enum, named here for reading). */
#define CSUM_PSEUDO BPF_F_PSEUDO_HDR

/* ---- kernel numbers that vmlinux.h lacks (BTF carries no macros) ----------------------------- */

/* Address families. */
#define AF_INET 2
#define AF_INET6 10
/* skb->protocol values (network order in the skb). */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
/* IP next-header numbers: TCP, and the IPv6 extension headers ingress follows. */
#define IPPROTO_TCP 6
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_DSTOPTS 60
#define IPPROTO_AH 51
/* Errors the query and relay hooks answer with. */
#define ENOENT 2
#define EAGAIN 11
#define ENOMEM 12
#define EINVAL 22
#define ENOSPC 28
#define ENODATA 61
#define ENOPROTOOPT 92
#define EISCONN 106
#define EALREADY 114
/* Socket options sockops sets on a connection that fails closed. */
#define SOL_SOCKET 1
#define SO_MARK 36
#define SOL_TCP 6
#define TCP_USER_TIMEOUT 18
/* sk_state values: the two in which the sweep resets a socket, and a request socket's. */
#define TCP_ESTABLISHED 1
#define TCP_CLOSE_WAIT 8
#define TCP_NEW_SYN_RECV 12
/* Nanoseconds in a millisecond. */
#define NSEC_PER_MSEC 1000000ULL

#endif /* PPBPF_LIB_CONSTS_H */
