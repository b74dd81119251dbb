// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for bpf/assemble.h, the rules by which the kernel side
 * takes in a pending header's segments, compiled for the host. The input is
 * a series of segments (offset, length, and whether the sender changed their
 * bytes); the harness does what ingress does around the rules (compare the
 * bytes a plan says overlap, copy, commit) and keeps a model of what TCP
 * queues (the segments let through) and of what was held back.
 *
 * Invariants, each an abort:
 *   - the bytes the parser is given (buffer[0, have)) are, byte for byte,
 *     what the application will read: the held bytes as they came (and will
 *     come again), then what TCP queued out of order;
 *   - a sender that never changes a byte is never refused, and the bytes
 *     judged are the stream's own;
 *   - the layout stays sane: runs within the header's limit, apart from
 *     each other, have <= extent <= max;
 *   - once every byte up to the limit has come (the head last), with no
 *     segment dropped for want of a slot, the whole header is contiguous.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../bpf/assemble.h"

/* The header limit of the kernel side (its buffer). */
#define MAX_HEADER 4096

static void die(const char *what)
{
	fprintf(stderr, "assemble invariant failed: %s\n", what);
	abort();
}

/* The sender's stream: a fixed pattern, so that a changed byte shows. */
static uint8_t stream_byte(uint32_t pos)
{
	return (uint8_t)(pos * 131u + (pos >> 7) + 17u);
}

struct model {
	struct ppbpf_layout l;
	uint8_t buf[MAX_HEADER];
	uint8_t tcp[MAX_HEADER];     /* what TCP queued out of order, per byte */
	uint8_t tcp_has[MAX_HEADER];
	uint8_t held[MAX_HEADER];    /* the bytes held back, as they came */
	uint8_t held_has[MAX_HEADER];
	uint8_t came[MAX_HEADER];    /* byte i has come in some segment (held or let through) */
	int refused, changed_any, dropped_any;
};

static void check_layout(const struct model *m, uint32_t max)
{
	uint32_t extent = ppbpf_extent(&m->l);

	if (m->l.have > extent || extent > max || m->l.head_end > extent)
		die("layout bounds");
	for (int i = 0; i < PPBPF_RUNS; i++) {
		const struct ppbpf_run *a = &m->l.runs[i];

		if (!a->hi)
			continue;
		if (a->lo >= a->hi || a->hi > max)
			die("a run out of bounds");
		for (int j = i + 1; j < PPBPF_RUNS; j++) {
			const struct ppbpf_run *b = &m->l.runs[j];

			if (b->hi && a->lo <= b->hi && b->lo <= a->hi)
				die("two runs meet");
		}
	}
}

/* What the application will read, byte by byte; the parser must see the same. */
static void check_judged_bytes(const struct model *m)
{
	for (uint32_t i = 0; i < m->l.have; i++) {
		int held = i < m->l.head_end;

		if (held ? !m->held_has[i] : !m->tcp_has[i])
			die("a byte counted as contiguous that came in no segment");
		if (m->buf[i] != (held ? m->held[i] : m->tcp[i]))
			die("the parser's bytes differ from what the application would read");
		if (!m->changed_any && m->buf[i] != stream_byte(i))
			die("the bytes judged are not the stream's");
	}
}

/* One segment: [off, off + len) of the stream (off may be negative), its bytes changed if `change`. */
static void segment(struct model *m, int32_t off, uint32_t len, uint32_t max, int change)
{
	struct ppbpf_seg_plan p;
	uint8_t data[2048];

	if (len > sizeof(data))
		len = sizeof(data);
	for (uint32_t k = 0; k < len; k++)
		data[k] = (uint8_t)(stream_byte((uint32_t)(off + (int32_t)k)) ^ (change && k % 5 == 0 ? 0x40 : 0));
	m->changed_any |= change;
	ppbpf_seg_plan(&m->l, off, len, max, &p);
	if (p.action == PPBPF_SEG_PASS) {
		if (off + (int32_t)len > 0 && off < (int32_t)max)
			die("a segment with header bytes passed unplanned");
		return;
	}
	if (p.action == PPBPF_SEG_DROP) {
		m->dropped_any = 1;
		return;
	}
	if (p.n == 0 || p.at + p.n > max || (p.action == PPBPF_SEG_HEAD) != (p.at <= m->l.head_end))
		die("a plan out of bounds, or a segment in sequence let through");
	if (p.check) { /* the bytes over kept ones must be the same */
		for (int i = 0; i <= PPBPF_RUNS; i++) {
			uint32_t lo, hi;

			if (ppbpf_overlap(&m->l, &p, i, &lo, &hi) && memcmp(data + p.skip + (lo - p.at), m->buf + lo, hi - lo)) {
				m->refused = 1; /* rejected (PPBPF_E_CHANGED): nothing more happens to this stream */
				if (!m->changed_any)
					die("an unchanged resend was refused");
				return;
			}
		}
	} else {
		for (uint32_t k = 0; k < p.n; k++) /* no overlap said: none may exist */
			if (m->came[p.at + k])
				die("an overlap with kept bytes the plan did not see");
	}
	memcpy(m->buf + p.at, data + p.skip, p.n);
	ppbpf_seg_commit(&m->l, &p);
	for (uint32_t k = 0; k < p.n; k++)
		m->came[p.at + k] = 1;
	if (p.action == PPBPF_SEG_HEAD) {
		for (uint32_t k = 0; k < p.n; k++) {
			m->held[p.at + k] = data[p.skip + k];
			m->held_has[p.at + k] = 1;
		}
	} else { /* let through: TCP queues it (where it overlaps, the bytes are the same) */
		for (uint32_t k = 0; k < p.n; k++) {
			m->tcp[p.at + k] = data[p.skip + k];
			m->tcp_has[p.at + k] = 1;
		}
	}
	check_layout(m, max);
	check_judged_bytes(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	static struct model m;
	uint32_t max;

	if (size < 2)
		return 0;
	memset(&m, 0, sizeof(m));
	max = 15 + ((uint32_t)in[0] << 8 | in[1]) % (MAX_HEADER - 14); /* a port's --max-header: 15..4096 */
	/* each segment: 2 bytes of offset (biased: some start before the stream), 2 of length, 1 of flags */
	for (size_t i = 2; i + 5 <= size && !m.refused; i += 5) {
		int32_t off = (int32_t)((uint32_t)in[i] << 8 | in[i + 1]) % 4400 - 100;
		uint32_t len = 1 + (((uint32_t)in[i + 2] << 8 | in[i + 3]) % 1500);

		segment(&m, off, len, max, (in[i + 4] & 0x0f) == 0x0f);
	}
	/* everything up to the limit has come, the head last, nothing dropped, nothing changed: all is contiguous */
	if (!m.refused && !m.dropped_any && !m.changed_any) {
		for (uint32_t at = 536; at < max; at += 536)
			segment(&m, (int32_t)at, 536, max, 0);
		segment(&m, 0, max < 536 ? max : 536, max, 0);
		if (!m.refused && !m.dropped_any && m.l.have != max)
			die("every byte came, yet the header is not contiguous");
	}
	return 0;
}
