/* SPDX-License-Identifier: MIT */
/* The kernel side's counters and map sizes, as commands read them. */
#ifndef PPBPF_CLI_COUNTERS_H
#define PPBPF_CLI_COUNTERS_H

#include <linux/types.h>
#include <ppbpf/abi.h>

/* Each counter's name in status and stats output (snake case), by enum ppbpf_counter. */
extern const char *const counter_names[PPBPF_CNT_MAX];
/* Every counter of the stats map fd, summed over CPUs, into out[PPBPF_CNT_MAX]. */
void read_counters(int fd, __u64 *out);
/* The entries of a hash map with __u64 keys. */
long count_entries(int fd);

#endif /* PPBPF_CLI_COUNTERS_H */
