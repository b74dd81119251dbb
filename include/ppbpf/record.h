/* SPDX-License-Identifier: MIT */
/*
 * A parsed header's fields in a socket's record (struct ppbpf_info): the one
 * mapping, shared by the kernel side (bpf/lib/verdict.h) and the library's
 * userspace fallback, so both give the same answer. Freestanding: it builds
 * for BPF and for the host, as parse.h does.
 */
#ifndef PPBPF_RECORD_H
#define PPBPF_RECORD_H

#include "abi.h"
#include "parse.h"

/*
 * What the header says, into the record. The caller sets the rest (state,
 * have, need, times, TLVs kept) in its own order: the kernel side publishes
 * state last (see bpf/lib/ordering.h).
 */
PPBPF_INLINE void ppbpf_record_header(struct ppbpf_info *info, const struct ppbpf_hdr *h)
{
	info->version = h->version;
	info->command = h->command;
	info->family = h->family;
	info->header_len = h->header_len;
	info->src_port = h->src_port;
	info->dst_port = h->dst_port;
	__builtin_memcpy(info->src_addr, h->src_addr, 16);
	__builtin_memcpy(info->dst_addr, h->dst_addr, 16);
	info->tlv_len = h->tlv_len;
}

#endif /* PPBPF_RECORD_H */
