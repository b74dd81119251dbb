/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The kernel side's maps. `ppbpf attach` pins each one under its own name in
 * the pin folder (user/cli/loader.c walks the object's maps): a new map needs
 * nothing in the loader, unless commands open it (PPBPF_OPENED_MAPS in
 * user/cli/loader.h).
 */
#ifndef PPBPF_LIB_MAPS_H
#define PPBPF_LIB_MAPS_H

#include "structs.h"

/* ---- policy, written by the CLI -------------------------------------------------------------- */

/* Policy by local port (host order): struct ppbpf_port_policy. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PPBPF_PORTS_MAX);
	__type(key, __u16);
	__type(value, struct ppbpf_port_policy);
} ports SEC(".maps");

/* One bit per local port with a policy: the ingress fast path, an inlined array read. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PORT_BITMAP_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} port_bits SEC(".maps");

/* One bit per local port with --rewrite-peer: getpeername leaves at once for the others. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PORT_BITMAP_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} rewrite_bits SEC(".maps");

/* Trusted IPv4 sources per port: a prefix of (port, address). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PPBPF_TRUST_MAX);
	__type(key, struct ppbpf_trust4_key);
	__type(value, __u8);
} trust4 SEC(".maps");

/* Trusted IPv6 sources per port: a prefix of (port, address). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PPBPF_TRUST_MAX);
	__type(key, struct ppbpf_trust6_key);
	__type(value, __u8);
} trust6 SEC(".maps");

/* Settings of the whole attachment, struct ppbpf_config (one entry). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_config);
} settings SEC(".maps");

/* ---- per tracked socket ---------------------------------------------------------------------- */

/* Per-socket record (struct ppbpf_sk), made by sockops: what the query hook answers from. */
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

/* Connection table, by socket cookie: `ppbpf list`, `bpftool map dump`. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PPBPF_CONNS_DEFAULT);
	__type(key, __u64);
	__type(value, struct ppbpf_conn);
} conns SEC(".maps");

/* ---- headers still incomplete ---------------------------------------------------------------- */

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

/* Where a small pending entry is assembled before it is stored (per CPU, as `scratch`). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_pending_small);
} scratch_small SEC(".maps");

/* ---- headers that reach a listener ----------------------------------------------------------- */

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

/* ---- transparent mode (tc) ------------------------------------------------------------------- */

/* One bit per local port in transparent mode: tc leaves at once for the others. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PORT_BITMAP_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} shift_bits SEC(".maps");

/*
 * Transparent flows by 4-tuple, from the SYN until after TIME_WAIT (the sweep
 * of `ppbpf run` removes them). HASH, never LRU: an evicted flow would lose
 * its shift and corrupt its stream. When full, new SYNs are dropped.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PPBPF_FLOWS_DEFAULT);
	__type(key, struct ppbpf_flow_key);
	__type(value, struct ppbpf_flow);
} flows SEC(".maps");

/* The header of a transparent flow as it comes in, then its verdict until sockops takes it with the child. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PPBPF_PENDING_MAX);
	__type(key, struct ppbpf_flow_key);
	__type(value, struct ppbpf_early);
} flow_hdrs SEC(".maps");

/* Where tc assembles a header's first bytes, and copies bytes it takes out of a segment (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_early);
} tc_scratch SEC(".maps");

/* ---- counters and events -------------------------------------------------------------------- */

/* Counters, enum ppbpf_counter (per CPU: `ppbpf status` adds them up). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PPBPF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Rejections for `ppbpf run` to log (it resets the sockets from a socket iterator). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Live events for `ppbpf trace`, written only while trace_ctl names a tracer (see trace.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} trace SEC(".maps");

/* Who traces: struct ppbpf_trace_ctl (pid 0: nobody, nothing is written to "trace"). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_trace_ctl);
} trace_ctl SEC(".maps");

/* ---- the sending side (sockops and sk_msg) --------------------------------------------------- */

/* Outbound policy by remote port (host order): struct ppbpf_send_policy. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PPBPF_PORTS_MAX);
	__type(key, __u16);
	__type(value, struct ppbpf_send_policy);
} send_ports SEC(".maps");

/* One bit per remote port with an outbound policy: sockops leaves at once for the others. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PORT_BITMAP_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} send_bits SEC(".maps");

/* Destinations that get a header, per remote port (IPv4): a prefix of (port, address). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PPBPF_TRUST_MAX);
	__type(key, struct ppbpf_trust4_key);
	__type(value, __u8);
} send_to4 SEC(".maps");

/* Destinations that get a header, per remote port (IPv6). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PPBPF_TRUST_MAX);
	__type(key, struct ppbpf_trust6_key);
	__type(value, __u8);
} send_to6 SEC(".maps");

/*
 * Inbound sockets' original clients, by the random token PPBPF_RELAY_TOKEN
 * gave out for them: PPBPF_RELAY finds what to write on an outgoing socket
 * with no fd or map of the caller's. An entry goes when its socket closes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PPBPF_RELAY_TOKENS);
	__type(key, __u64);
	__type(value, struct ppbpf_relay_src);
} relay_tokens SEC(".maps");

/* Where PPBPF_RELAY_TOKEN assembles an entry (per CPU: it is too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ppbpf_relay_src);
} scratch_relay SEC(".maps");

/* An outgoing connection's header until it is written (struct ppbpf_send_sk). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ppbpf_send_sk);
} send_sks SEC(".maps");

/*
 * Sockets whose header is not out yet, by cookie: the sk_msg program runs
 * on their sends (the loader attaches it to this map). A socket leaves at
 * the first segment that carries its header, so that later sends cost nothing.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, PPBPF_SEND_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} send_socks SEC(".maps");

#endif /* PPBPF_LIB_MAPS_H */
