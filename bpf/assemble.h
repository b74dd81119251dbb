/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Where the segments of a pending header go: the rules, apart from the
 * copying, so that they compile for BPF and for the host (a fuzz target
 * checks them against a model of what TCP keeps).
 *
 * Until the header is judged, the segments that bring the stream's first
 * bytes in sequence (the head) are held back: dropped, unacknowledged, so
 * the sender goes on sending the rest of its window as if nothing were
 * wrong, and no byte reaches the application. A segment that comes after a
 * gap (one was lost) may pass: TCP cannot give the application a byte while
 * the first ones are missing, so it queues it out of order and acknowledges
 * it selectively (SACK); the sender learns what is missing and resends it,
 * instead of stalling on its first segment. Its bytes are kept here as a run.
 * Once the header is accepted, the held segments are resent and pass.
 *
 * A segment whose bytes overlap bytes already kept must bring the same
 * bytes there (it is compared first): else TCP could hold two versions of a
 * byte, and what the application reads would not be what was judged. A
 * mismatch rejects the connection.
 */
#ifndef PPBPF_ASSEMBLE_H
#define PPBPF_ASSEMBLE_H

#include <ppbpf/target.h>

/* Slots for runs (a power of two: an index is masked with it). */
#define PPBPF_RUNS 8

/* Bytes [lo, hi) of the stream, from its start, that passed to TCP's out-of-order queue; hi == 0: free. */
struct ppbpf_run {
	__u16 lo, hi;
};

/* Where a pending header's bytes are. */
struct ppbpf_layout {
	__u32 have;     /* contiguous bytes from the stream start: what the parser is given */
	__u16 head_end; /* bytes [0, head_end) came in sequence, held back */
	__u16 pad;
	struct ppbpf_run runs[PPBPF_RUNS];
};

/* What to do with a segment while its stream's header is pending. */
enum ppbpf_seg_action {
	PPBPF_SEG_PASS, /* no header byte in it (old, or past the largest header): let it through */
	PPBPF_SEG_HEAD, /* in sequence (it starts within the head): copy it, then hold it back */
	PPBPF_SEG_RUN,  /* after a gap: copy it as a run, and let it through */
	PPBPF_SEG_DROP, /* no slot for a new run: drop it, copy nothing (it is resent) */
};

/*
 * A segment's plan: copy n payload bytes from payload offset skip to stream
 * offset at; where check is set, its bytes overlap kept ones and must be
 * compared with them first (ppbpf_overlap).
 */
struct ppbpf_seg_plan {
	__u32 skip, at, n;
	enum ppbpf_seg_action action;
	int check;
};

/* [lo, hi) and [a, b) share a byte. */
PPBPF_INLINE int ppbpf_meet(__u32 lo, __u32 hi, __u32 a, __u32 b)
{
	return lo < b && a < hi;
}

/*
 * Overlap i (0..PPBPF_RUNS) of a plan's bytes with kept bytes: with run i,
 * or (i == PPBPF_RUNS) with the head. Returns 1 with it in [*lo, *hi), or 0
 * if there is none.
 */
PPBPF_SUBPROG int ppbpf_overlap(const struct ppbpf_layout *l, const struct ppbpf_seg_plan *p, int i, __u32 *lo,
				__u32 *hi)
{
	__u32 a = 0, b, end;

	PPBPF_ARGS_NONNULL(l && p && lo && hi, 0);
	b = l->head_end;
	end = p->at + p->n;

	if (i < PPBPF_RUNS) {
		a = l->runs[i & (PPBPF_RUNS - 1)].lo;
		b = l->runs[i & (PPBPF_RUNS - 1)].hi;
	}
	if (!b || !ppbpf_meet(p->at, end, a, b))
		return 0;
	*lo = a > p->at ? a : p->at;
	*hi = b < end ? b : end;
	return 1;
}

/*
 * The plan for a segment of len payload bytes starting off bytes after the
 * stream start (negative: it starts before), for a header of at most max
 * bytes (<= 65535). A BPF global function, as are the next ones: checked
 * once by the verifier, where inlined loops over the runs cost it too many
 * states.
 */
PPBPF_SUBPROG int ppbpf_seg_plan(const struct ppbpf_layout *l, __s64 off, __u32 len, __u32 max,
				 struct ppbpf_seg_plan *p)
{
	__s64 end = off + len, lo, hi;
	int joins = 0, free = 0;

	PPBPF_ARGS_NONNULL(l && p, 0);
	p->skip = p->at = p->n = 0;
	p->check = 0;
	if (end <= 0 || off >= (__s64)max) { /* all before the stream, or all past the header */
		p->action = PPBPF_SEG_PASS;
		return 0;
	}
	lo = off < 0 ? 0 : off;
	hi = end < (__s64)max ? end : (__s64)max;
	p->skip = (__u32)(lo - off);
	p->at = (__u32)lo;
	p->n = (__u32)(hi - lo);
	p->check = ppbpf_meet(p->at, p->at + p->n, 0, l->head_end);
	for (int i = 0; i < PPBPF_RUNS; i++) {
		const struct ppbpf_run *r = &l->runs[i];

		if (!r->hi) {
			free = 1;
			continue;
		}
		if (ppbpf_meet(p->at, p->at + p->n, r->lo, r->hi))
			p->check = 1;
		if (r->lo <= p->at + p->n && r->hi >= p->at) /* overlaps or touches: it merges */
			joins = 1;
	}
	if (off <= l->head_end)
		p->action = PPBPF_SEG_HEAD;
	else
		p->action = joins || free ? PPBPF_SEG_RUN : PPBPF_SEG_DROP;
	return 0;
}

/*
 * Contiguous bytes from the stream start: the head, and the run that reaches
 * past its end, if one does. Runs never meet (commit merges those that
 * would), so at most one can, and none reaches past that one's end.
 */
PPBPF_INLINE __u32 ppbpf_contiguous(const struct ppbpf_layout *l)
{
	__u32 head = l->head_end, have = head;

	for (int i = 0; i < PPBPF_RUNS; i++)
		if (l->runs[i].hi > head && l->runs[i].lo <= head)
			have = l->runs[i].hi;
	return have;
}

/* After the copy of a HEAD or RUN plan: record where its bytes are. */
PPBPF_SUBPROG int ppbpf_seg_commit(struct ppbpf_layout *l, const struct ppbpf_seg_plan *p)
{
	__u32 lo, hi;
	int slot = -1;

	PPBPF_ARGS_NONNULL(l && p, 0);
	lo = p->at;
	hi = p->at + p->n;

	if (p->action == PPBPF_SEG_HEAD) {
		if (hi > l->head_end)
			l->head_end = (__u16)hi;
	} else if (p->action == PPBPF_SEG_RUN) {
		for (int i = 0; i < PPBPF_RUNS; i++) { /* take in every run it overlaps or touches */
			struct ppbpf_run *r = &l->runs[i];

			if (r->hi && r->lo <= hi && r->hi >= lo) {
				lo = r->lo < lo ? r->lo : lo;
				hi = r->hi > hi ? r->hi : hi;
				r->lo = r->hi = 0;
			}
			if (!r->hi && slot < 0)
				slot = i;
		}
		if (slot >= 0) {
			l->runs[slot & (PPBPF_RUNS - 1)].lo = (__u16)lo; /* the mask: a bound the verifier sees */
			l->runs[slot & (PPBPF_RUNS - 1)].hi = (__u16)hi;
		}
	}
	l->have = ppbpf_contiguous(l);
	return 0;
}

/* The end of the furthest byte kept: how much a copy of the buffer must take. */
PPBPF_SUBPROG int ppbpf_extent(const struct ppbpf_layout *l)
{
	__u32 end;

	PPBPF_ARGS_NONNULL(l, 0);
	end = l->head_end;

	for (int i = 0; i < PPBPF_RUNS; i++)
		if (l->runs[i].hi > end)
			end = l->runs[i].hi;
	return (int)end;
}

#endif /* PPBPF_ASSEMBLE_H */
