/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Pending entries: the stream bytes of a header still incomplete, by socket
 * cookie, in a small entry (pending_small) while they fit, else a large one
 * (pending). rec->stored says which one a socket has.
 */
#ifndef PPBPF_LIB_PENDING_H
#define PPBPF_LIB_PENDING_H

#include "maps.h"
#include "stats.h"
#include "verdict.h"

/* Is the socket's pending entry (if any) in the small map? */
static __always_inline int stored_small(const struct ppbpf_sk *rec)
{
	return rec->stored && rec->stored <= PPBPF_SMALL_MAX;
}

/*
 * n (<= PPBPF_SMALL_MAX), masked in the register that is passed on: clang
 * may spill a bounded value, and 6.1 loses the bound of a 32-bit spill.
 */
static __always_inline __u32 small_len(__u32 n)
{
	asm volatile("%0 &= 0xff" : "+r"(n));
	return n;
}

/* Store a short incomplete header (extent n) as the socket's small pending entry. 0 or < 0. */
static __always_inline int store_small(__u64 cookie, const struct ppbpf_pending *bytes, __u32 n)
{
	struct ppbpf_pending_small *tmp;
	__u32 zero = 0;

	tmp = bpf_map_lookup_elem(&scratch_small, &zero);
	if (!tmp || !n || n > PPBPF_SMALL_MAX)
		return -1;
	tmp->l = bytes->l;
	if (bpf_probe_read_kernel(tmp->bytes, small_len(n), bytes->buf.data))
		return -1;
	return bpf_map_update_elem(&pending_small, &cookie, tmp, BPF_ANY);
}

/* Load the socket's small pending entry into the scratch buffer pend. 0 or < 0. */
static __always_inline int load_small(const struct ppbpf_sk *rec, struct ppbpf_pending *pend)
{
	__u64 cookie = rec->info.cookie;
	struct ppbpf_pending_small *small = bpf_map_lookup_elem(&pending_small, &cookie);
	__u32 n = rec->stored;

	if (!small || !n || n > PPBPF_SMALL_MAX || bpf_probe_read_kernel(pend->buf.data, small_len(n), small->bytes))
		return -1;
	pend->l = small->l;
	return 0;
}

/* Drop the socket's pending entry, small or large. */
static __always_inline void drop_pending(struct ppbpf_sk *rec, __u64 cookie)
{
	if (stored_small(rec))
		bpf_map_delete_elem(&pending_small, &cookie);
	else if (rec->stored)
		bpf_map_delete_elem(&pending, &cookie);
	rec->stored = 0;
}

/*
 * Both of a closing socket's pending entries, whatever rec->stored says:
 * ingress (storing one) and sockops (seeing the close) both write `stored`,
 * so either may read the other's stale value, or have its own overwritten.
 */
static __always_inline void drop_pending_closed(struct ppbpf_sk *rec, __u64 cookie)
{
	bpf_map_delete_elem(&pending_small, &cookie);
	bpf_map_delete_elem(&pending, &cookie);
	rec->stored = 0;
}

/*
 * An incomplete header: keep its bytes in a pending entry for the next
 * segments, a small one while they fit. bytes is the scratch, an `early`
 * entry, or the socket's large entry itself (stored in place: nothing to do).
 * If sockops saw the socket close meanwhile, the entry goes again at once:
 * nothing else would remove it.
 */
static __always_inline void keep_pending(struct ppbpf_sk *rec, struct ppbpf_pending *bytes)
{
	__u64 cookie = rec->info.cookie;
	__u32 extent = ppbpf_extent(&bytes->l);
	int err = 0;

	if (rec->stored > PPBPF_SMALL_MAX) {
		/* large: bytes is the entry itself, changed in place; it stays large */
	} else if (extent <= PPBPF_SMALL_MAX) {
		err = store_small(cookie, bytes, extent);
		rec->stored = extent;
	} else { /* new, or grown out of the small entry */
		err = bpf_map_update_elem(&pending, &cookie, bytes, BPF_ANY);
		if (!err && stored_small(rec))
			bpf_map_delete_elem(&pending_small, &cookie);
		rec->stored = extent;
	}
	if (err) {
		rec->stored = 0;
		count(PPBPF_CNT_NO_MEMORY);
		if (claim_verdict(rec))
			reject(rec, PPBPF_E_NO_ROOM); /* fail closed */
		return;
	}
	/* A locked read: ordered after the store above, as on_close orders its flag before its delete. */
	if (__sync_fetch_and_add(&rec->closing, 0))
		drop_pending_closed(rec, cookie);
}

#endif /* PPBPF_LIB_PENDING_H */
