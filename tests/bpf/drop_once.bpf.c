// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Test helper, not part of ppbpf: drops the nth data segment arriving for one
 * TCP port, once (or, with acks set, every pure ACK to it). The sender retransmits it, so the segments after it arrive
 * out of order. kernel.sh and segments.sh attach it as generic XDP to the loopback of a test
 * network namespace: XDP runs before the cgroup hook, so ppbpf never sees the
 * lost segment (a cgroup program could not hide it: the cgroup hook runs every
 * program before it applies a drop).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Control block, one struct so that its layout in .bss is fixed (recv_test writes it). */
struct {
	__u32 port;    /* destination port whose segments are counted (0: do nothing) */
	__u32 nth;     /* which data segment to drop, from 1 */
	__u32 seen;    /* data segments seen so far */
	__u32 dropped; /* 1 once the drop happened */
	__u32 acks;    /* 1: drop every pure ACK (no payload, SYN, FIN or RST) to the port instead */
} ctl;

SEC("xdp")
int drop_once(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th;

	if (!ctl.port || (ctl.dropped && !ctl.acks) || (void *)(ip + 1) > end || eth->h_proto != bpf_htons(0x0800) ||
	    ip->protocol != 6)
		return XDP_PASS;
	th = (void *)ip + (ip->ihl & 15) * 4;
	if ((void *)(th + 1) > end || bpf_ntohs(th->dest) != ctl.port)
		return XDP_PASS;
	if (bpf_ntohs(ip->tot_len) <= (ip->ihl & 15) * 4 + th->doff * 4) { /* no payload */
		if (ctl.acks && th->ack && !th->syn && !th->fin && !th->rst) {
			ctl.dropped++;
			return XDP_DROP;
		}
		return XDP_PASS;
	}
	if (ctl.acks)
		return XDP_PASS;
	if (++ctl.seen == ctl.nth) {
		ctl.dropped = 1;
		return XDP_DROP;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
