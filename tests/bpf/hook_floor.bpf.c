// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Benchmark control, not part of ppbpf: an ingress program that does
 * nothing. Attached to a cgroup it measures what the cgroup hook itself
 * costs, the floor under ppbpf's cost on untracked traffic.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("cgroup_skb/ingress")
int hook_floor(struct __sk_buff *skb __attribute__((unused)))
{
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
