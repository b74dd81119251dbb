/* SPDX-License-Identifier: MIT */
/* The kernel side's counters and map sizes, as commands read them. */
#ifndef PPBPF_CLI_COUNTERS_H
#define PPBPF_CLI_COUNTERS_H

#include <stdbool.h>
#include <linux/types.h>
#include <ppbpf/abi.h>

/* Each counter's name in status and stats output (snake case), by enum ppbpf_counter. */
extern const char *const counter_names[PPBPF_CNT_MAX];
/* Every counter of the stats map fd, summed over CPUs, into out[PPBPF_CNT_MAX]. */
void read_counters(int fd, __u64 *out);
/* The entries of a hash map with __u64 keys. */
long count_entries(int fd);
/* The pid trace_ctl names as the tracer (0: nobody traces, or the map cannot be read). */
__u32 tracer_pid(int trace_ctl_fd);
/* Is that process alive (it may be another user's)? A dead one's pid is stale. */
bool tracer_alive(__u32 pid);

#endif /* PPBPF_CLI_COUNTERS_H */
