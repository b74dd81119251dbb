/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The counters `ppbpf status` shows (enum ppbpf_counter, in the per-CPU `stats`). */
#ifndef PPBPF_LIB_STATS_H
#define PPBPF_LIB_STATS_H

#include "maps.h"

/* Add one to a counter. */
static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	/* Atomic: sockops runs in process context too, and a softirq on this CPU may interrupt it. */
	if (v)
		__sync_fetch_and_add(v, 1);
}

#endif /* PPBPF_LIB_STATS_H */
