// SPDX-License-Identifier: MIT
/* The kernel side's counters (PERCPU_ARRAY "stats") and map sizes, as commands read them. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ppbpf/abi.h>
#include "counters.h"

/* Names for output (status, stats --json), by enum ppbpf_counter. */
const char *const counter_names[PPBPF_CNT_MAX] = {
	[PPBPF_CNT_TRACKED] = "tracked",           [PPBPF_CNT_UNTRUSTED] = "untrusted",
	[PPBPF_CNT_V1] = "v1",                     [PPBPF_CNT_V2] = "v2",
	[PPBPF_CNT_LOCAL] = "local",               [PPBPF_CNT_UNKNOWN] = "unknown_family",
	[PPBPF_CNT_NOT_PROXY] = "not_proxy",       [PPBPF_CNT_PLAIN] = "plain",
	[PPBPF_CNT_ERR_V1] = "error_v1",           [PPBPF_CNT_ERR_V2] = "error_v2",
	[PPBPF_CNT_ERR_TOO_LARGE] = "error_too_large", [PPBPF_CNT_PENDING] = "pending_segments",
	[PPBPF_CNT_SEGMENTS] = "segments",         [PPBPF_CNT_OUT_OF_ORDER] = "out_of_order",
	[PPBPF_CNT_RETRANSMIT] = "retransmits",    [PPBPF_CNT_HANDOFF] = "listener_handoffs",
	[PPBPF_CNT_TLV_TRUNCATED] = "tlv_truncated", [PPBPF_CNT_REWRITES] = "peer_rewrites",
	[PPBPF_CNT_QUERIES] = "queries",           [PPBPF_CNT_NO_MEMORY] = "no_memory",
	[PPBPF_CNT_CLOSED] = "closed",             [PPBPF_CNT_REJECTED] = "rejected",
	[PPBPF_CNT_REJ_UNTRUSTED] = "rejected_untrusted", [PPBPF_CNT_REJ_VERSION] = "rejected_version",
	[PPBPF_CNT_REJ_TIMEOUT] = "rejected_timeout", [PPBPF_CNT_REJ_NO_ROOM] = "rejected_table_full",
	[PPBPF_CNT_HELD] = "held_segments",        [PPBPF_CNT_DROPPED] = "dropped_segments",
	[PPBPF_CNT_RESETS] = "resets",             [PPBPF_CNT_EVENTS_LOST] = "events_lost",
	[PPBPF_CNT_TIMEOUT_PLAIN] = "timeout_plain",    [PPBPF_CNT_UNDECODABLE] = "undecodable_segments",
	[PPBPF_CNT_NO_HANDSHAKE] = "no_handshake",      [PPBPF_CNT_BUSY] = "busy_segments",
	[PPBPF_CNT_REVOKED] = "revoked",               [PPBPF_CNT_REJ_CHANGED] = "rejected_changed",
	[PPBPF_CNT_BEFORE_SETUP] = "before_setup_segments",
	[PPBPF_CNT_T_FLOWS] = "transparent_flows",
	[PPBPF_CNT_T_HELD_ACKS] = "transparent_held_acks",
	[PPBPF_CNT_T_RESETS] = "transparent_resets",
	[PPBPF_CNT_T_NO_ROOM] = "transparent_no_room",
	[PPBPF_CNT_T_FASTOPEN] = "transparent_fastopen_refused",
	[PPBPF_CNT_T_SIGNED] = "transparent_signed_refused",
	[PPBPF_CNT_T_SOCKMAP] = "transparent_sockmap",
	[PPBPF_CNT_T_LATE_PLAIN] = "transparent_late_plain",
	[PPBPF_CNT_SENT] = "sent",
	[PPBPF_CNT_SEND_FAILED] = "send_failed",
	[PPBPF_CNT_SEND_RELEASED] = "send_released",
	[PPBPF_CNT_SEND_NO_ROOM] = "send_no_room",
	[PPBPF_CNT_SEND_FASTOPEN] = "send_fastopen_refused",
	[PPBPF_CNT_RELAY_TOKENS] = "relay_tokens",
	[PPBPF_CNT_RELAYED] = "relayed",
	[PPBPF_CNT_RELAY_REFUSED] = "relay_refused",
	[PPBPF_CNT_SEND_DROPPED] = "send_dropped",
	[PPBPF_CNT_CLOSED_UNREAD] = "closed_unread_segments",
	[PPBPF_CNT_TRACE_LOST] = "trace_events_lost",
};

void read_counters(int fd, __u64 *out)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals = calloc(ncpu > 0 ? (size_t)ncpu : 1, sizeof(__u64));

	for (__u32 k = 0; k < PPBPF_CNT_MAX; k++) {
		out[k] = 0;
		if (vals && ncpu > 0 && !bpf_map_lookup_elem(fd, &k, vals))
			for (int c = 0; c < ncpu; c++)
				out[k] += vals[c];
	}
	free(vals);
}

long count_entries(int fd)
{
	__u64 key, next;
	void *prev = NULL;
	long n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		n++;
	}
	return n;
}

__u32 tracer_pid(int trace_ctl_fd)
{
	struct ppbpf_trace_ctl ctl = {};
	__u32 zero = 0;

	return bpf_map_lookup_elem(trace_ctl_fd, &zero, &ctl) ? 0 : ctl.pid;
}

bool tracer_alive(__u32 pid)
{
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}
