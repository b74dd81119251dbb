// SPDX-License-Identifier: MIT
/* Port policy and trusted sources in the pinned maps. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <ppbpf/ppbpf.h>
#include "policy.h"

/* A trust key of either family (trust4 keys are a prefix of this layout). */
union trust_key {
	struct ppbpf_trust4_key k4;
	struct ppbpf_trust6_key k6;
};

/* Every key of a trust map. */
struct key_set {
	union trust_key *keys;
	size_t n, cap;
};

static size_t key_size(int af)
{
	return af == AF_INET ? sizeof(struct ppbpf_trust4_key) : sizeof(struct ppbpf_trust6_key);
}

static int trust_fd(const struct ppbpf_maps *m, int af)
{
	return af == AF_INET ? m->trust4 : m->trust6;
}

static void make_key(union trust_key *k, __u16 port, const struct cidr *c)
{
	memset(k, 0, sizeof(*k));
	k->k6.prefixlen = PPBPF_TRUST_PORT_BITS + (__u32)c->bits;
	k->k6.port = htons(port);
	memcpy(k->k6.addr, c->addr, c->af == AF_INET ? 4 : 16);
}

static __u16 key_port(const union trust_key *k)
{
	return ntohs(k->k6.port); /* the same offset in both layouts */
}

/* The key as a block of its family. */
static void key_cidr(const union trust_key *k, int af, struct cidr *out)
{
	memset(out, 0, sizeof(*out));
	out->af = af;
	out->bits = (int)k->k6.prefixlen - PPBPF_TRUST_PORT_BITS;
	memcpy(out->addr, k->k6.addr, af == AF_INET ? 4 : 16);
}

/* All keys of a trust map, walked once (deleting while walking a trie skips keys). 0 or -errno. */
static int read_keys(int fd, int af, struct key_set *s)
{
	union trust_key key, next;
	void *prev = NULL;

	s->n = 0;
	memset(&next, 0, sizeof(next));
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 256;
			union trust_key *k = realloc(s->keys, cap * sizeof(*k));

			if (!k)
				return -ENOMEM;
			s->keys = k;
			s->cap = cap;
		}
		memset(&s->keys[s->n], 0, sizeof(s->keys[s->n]));
		memcpy(&s->keys[s->n], &next, key_size(af));
		s->n++;
		memcpy(&key, &next, sizeof(key));
		prev = &key;
	}
	return errno == ENOENT ? 0 : -errno;
}

static bool key_in(const struct key_set *s, const union trust_key *k, int af)
{
	for (size_t i = 0; i < s->n; i++)
		if (!memcmp(&s->keys[i], k, key_size(af)))
			return true;
	return false;
}

/* Is this key one of the blocks a port wants (blocks[n]; none listed: the two "any" blocks)? */
static bool key_in_blocks(const union trust_key *k, int af, const struct cidr *blocks, int n_blocks)
{
	static const struct cidr any[2] = { { .af = AF_INET }, { .af = AF_INET6 } };
	const struct cidr *list = n_blocks ? blocks : any;
	int n = n_blocks ? n_blocks : 2;
	struct cidr c;

	key_cidr(k, af, &c);
	for (int i = 0; i < n; i++)
		if (cidr_equal(&list[i], &c))
			return true;
	return false;
}

/* Set or clear a port's bit in a per-port bitmap map. */
static int set_port_bit(int fd, __u16 port, bool on)
{
	__u32 word = port >> 6;
	__u64 bits = 0;

	if (bpf_map_lookup_elem(fd, &word, &bits))
		return -errno;
	if (on)
		bits |= 1ull << (port & 63);
	else
		bits &= ~(1ull << (port & 63));
	return bpf_map_update_elem(fd, &word, &bits, BPF_ANY) ? -errno : 0;
}

/* Ports marked in a bitmap map, into owned[] (a 65536-bit bitmap). 0 or -errno. */
static int or_port_bits(int fd, __u64 *owned)
{
	for (__u32 word = 0; word < 65536 / 64; word++) {
		__u64 bits;

		if (bpf_map_lookup_elem(fd, &word, &bits))
			return -errno;
		owned[word] |= bits;
	}
	return 0;
}

static void mark(__u64 *bitmap, __u16 port)
{
	bitmap[port >> 6] |= 1ull << (port & 63);
}

static bool marked(const __u64 *bitmap, __u16 port)
{
	return bitmap[port >> 6] >> (port & 63) & 1;
}

/*
 * Every port that owns something, into owned[] (cleared first): a key of the
 * policy map, a bit of one of the bitmap maps, a block of have[2]. 0 or -errno.
 */
static int mark_owned(int policy_fd, const int *bit_fds, int n_bits, const struct key_set *have, __u64 *owned)
{
	__u16 key, next;
	void *prev = NULL;
	int rc = 0;

	memset(owned, 0, 65536 / 8);
	while (!bpf_map_get_next_key(policy_fd, prev, &next)) {
		mark(owned, next);
		key = next;
		prev = &key;
	}
	for (int b = 0; !rc && b < n_bits; b++)
		rc = or_port_bits(bit_fds[b], owned);
	for (int f = 0; !rc && f < 2; f++)
		for (size_t i = 0; i < have[f].n; i++)
			mark(owned, key_port(&have[f].keys[i]));
	return rc;
}

/*
 * Everything a port owns in the maps goes, in an order that never makes a
 * connection meet half a policy: the policy first (sockops tracks no new
 * connection, and a header still pending is judged against no policy: not
 * honoured), then the ingress and getpeername bits (segments and queries stop
 * looking), and the trusted blocks last (the caller deletes them): never a
 * port with a policy and nobody trusted.
 */
static int unset_port(const struct ppbpf_maps *m, __u16 port)
{
	int rc = 0;

	if (bpf_map_delete_elem(m->ports, &port) && errno != ENOENT)
		rc = -errno;
	if (!rc)
		rc = set_port_bit(m->port_bits, port, false);
	if (!rc)
		rc = set_port_bit(m->rewrite_bits, port, false);
	return rc;
}

int policy_unshift_port(const struct ppbpf_maps *m, __u16 port)
{
	return set_port_bit(m->shift_bits, port, false);
}

/* Delete the keys of the set that doomed() says go. 0 or -errno. */
static int delete_keys(int fd, int af, const struct key_set *s,
		       bool (*doomed)(const union trust_key *k, int af, const void *ctx), const void *ctx)
{
	for (size_t i = 0; i < s->n; i++)
		if (doomed(&s->keys[i], af, ctx) && bpf_map_delete_elem(fd, &s->keys[i]) && errno != ENOENT)
			return -errno;
	return 0;
}

struct apply_ctx {
	const struct policy_port *ports;
	const int *index;     /* port -> index in ports, -1: not wanted */
	const __u64 *removed; /* ports to remove */
};

static bool doomed_on_apply(const union trust_key *k, int af, const void *arg)
{
	const struct apply_ctx *c = arg;
	__u16 port = key_port(k);

	if (c->index[port] >= 0)
		return !key_in_blocks(k, af, c->ports[c->index[port]].trust, c->ports[c->index[port]].n_trust);
	return c->removed && marked(c->removed, port);
}

/* A port and the blocks it wants in a pair of per-port prefix tries (none listed: the two "any" blocks). */
struct port_blocks {
	__u16 port;
	const struct cidr *blocks;
	int n;
};

/*
 * Add the blocks of pb[] that the tries (fds: IPv4, IPv6; have: their keys)
 * lack; on a failure, those added go again: nothing has changed. 0 or -errno.
 */
static int add_blocks(const int *fds, const struct port_blocks *pb, int n, const struct key_set *have,
		      __u16 *failed_port)
{
	static const struct cidr any[2] = { { .af = AF_INET }, { .af = AF_INET6 } };
	struct key_set added[2] = { { 0 } };
	int rc = 0;

	for (int i = 0; !rc && i < n; i++) {
		const struct cidr *list = pb[i].n ? pb[i].blocks : any;
		int nt = pb[i].n ? pb[i].n : 2;

		for (int t = 0; !rc && t < nt; t++) {
			int f = list[t].af == AF_INET ? 0 : 1, af = list[t].af;
			struct key_set *a = &added[f];
			union trust_key k;
			__u8 one = 1;

			make_key(&k, pb[i].port, &list[t]);
			if (key_in(&have[f], &k, af) || key_in(a, &k, af))
				continue;
			if (a->n == a->cap) {
				size_t cap = a->cap ? a->cap * 2 : 64;
				union trust_key *grown = realloc(a->keys, cap * sizeof(*grown));

				if (!grown) {
					rc = -ENOMEM;
					break;
				}
				a->keys = grown;
				a->cap = cap;
			}
			if (bpf_map_update_elem(fds[f], &k, &one, BPF_NOEXIST)) {
				rc = -errno;
				*failed_port = pb[i].port;
				break;
			}
			a->keys[a->n++] = k;
		}
	}
	for (int f = 0; f < 2; f++) {
		for (size_t i = 0; rc && i < added[f].n; i++)
			bpf_map_delete_elem(fds[f], &added[f].keys[i]);
		free(added[f].keys);
	}
	return rc;
}

/*
 * The start of an apply: where each port is in pb (index, 65536 entries, -1:
 * not given; the caller frees it), the tries' keys (have[2]), and pb's new
 * blocks added (add_blocks). 0 or -errno.
 */
static int begin_apply(const int *fds, const struct port_blocks *pb, int n, int **index, struct key_set *have,
		       __u16 *failed_port)
{
	const int afs[2] = { AF_INET, AF_INET6 };
	int rc = 0;

	*failed_port = 0;
	*index = malloc(65536 * sizeof(int));
	if (!*index)
		return -ENOMEM;
	for (int i = 0; i < 65536; i++)
		(*index)[i] = -1;
	for (int i = 0; i < n; i++)
		(*index)[pb[i].port] = i;
	for (int f = 0; !rc && f < 2; f++)
		rc = read_keys(fds[f], afs[f], &have[f]);
	return rc ? rc : add_blocks(fds, pb, n, have, failed_port);
}

int policy_apply(const struct ppbpf_maps *m, const struct policy_port *ports, int n, bool exact, __u16 *failed_port)
{
	static __u64 owned[65536 / 64], removed[65536 / 64];
	struct key_set have[2] = { { 0 } };
	const int afs[2] = { AF_INET, AF_INET6 }, fds[2] = { m->trust4, m->trust6 };
	struct port_blocks *pb = calloc((size_t)n + 1, sizeof(*pb));
	struct apply_ctx ctx = { .ports = ports };
	int *index = NULL, rc;

	for (int i = 0; pb && i < n; i++)
		pb[i] = (struct port_blocks){ ports[i].port, ports[i].trust, ports[i].n_trust };
	/* 1. The new trusted blocks; on a failure, take back those added: nothing has changed. */
	rc = pb ? begin_apply(fds, pb, n, &index, have, failed_port) : -ENOMEM;
	free(pb);
	ctx.index = index;
	if (rc)
		goto out;

	/* 2. The policies, then the bits: the ingress hook looks at a port once its bit is set. */
	for (int i = 0; !rc && i < n; i++) {
		const struct policy_port *p = &ports[i];

		if (bpf_map_update_elem(m->ports, &p->port, &p->pol, BPF_ANY))
			rc = -errno;
		if (!rc)
			rc = set_port_bit(m->rewrite_bits, p->port, p->pol.flags & PPBPF_PORT_REWRITE_PEER);
		/* set, never cleared here: tc must go on shifting a port's live flows whatever its policy becomes */
		if (!rc && (p->pol.flags & PPBPF_PORT_TRANSPARENT))
			rc = set_port_bit(m->shift_bits, p->port, true);
		if (!rc)
			rc = set_port_bit(m->port_bits, p->port, true);
		if (rc)
			*failed_port = p->port;
	}

	/* 3. exact: every other port that owns anything goes (bits, policy; its blocks in 4). */
	if (!rc && exact) {
		const int bit_fds[2] = { m->port_bits, m->rewrite_bits };

		memset(removed, 0, sizeof(removed));
		rc = mark_owned(m->ports, bit_fds, 2, have, owned);
		for (int port = 0; !rc && port < 65536; port++) {
			if (!marked(owned, (__u16)port) || index[port] >= 0)
				continue;
			mark(removed, (__u16)port);
			rc = unset_port(m, (__u16)port);
			if (rc)
				*failed_port = (__u16)port;
		}
		ctx.removed = removed;
	}

	/* 4. Last, the blocks no port wants any more. */
	for (int f = 0; !rc && f < 2; f++)
		rc = delete_keys(trust_fd(m, afs[f]), afs[f], &have[f], doomed_on_apply, &ctx);
out:
	for (int f = 0; f < 2; f++)
		free(have[f].keys);
	free(index);
	return rc;
}

static bool doomed_on_remove(const union trust_key *k, int af, const void *arg)
{
	(void)af;
	return marked(arg, key_port(k));
}

int policy_remove_ports(const struct ppbpf_maps *m, const __u16 *ports, int n)
{
	static __u64 gone[65536 / 64];
	const int afs[2] = { AF_INET, AF_INET6 };
	struct key_set have[2] = { { 0 } };
	int rc = 0, had = 0;

	memset(gone, 0, sizeof(gone));
	for (int f = 0; !rc && f < 2; f++)
		rc = read_keys(trust_fd(m, afs[f]), afs[f], &have[f]);
	for (int i = 0; !rc && i < n; i++) {
		struct ppbpf_port_policy pol;
		__u32 word = ports[i] >> 6;
		__u64 pb = 0, rb = 0;
		bool any = !bpf_map_lookup_elem(m->ports, &ports[i], &pol);

		bpf_map_lookup_elem(m->port_bits, &word, &pb);
		bpf_map_lookup_elem(m->rewrite_bits, &word, &rb);
		any = any || ((pb | rb) >> (ports[i] & 63) & 1);
		for (int f = 0; !any && f < 2; f++)
			for (size_t k = 0; !any && k < have[f].n; k++)
				any = key_port(&have[f].keys[k]) == ports[i];
		had += any;
		mark(gone, ports[i]);
		rc = unset_port(m, ports[i]);
	}
	for (int f = 0; !rc && f < 2; f++)
		rc = delete_keys(trust_fd(m, afs[f]), afs[f], &have[f], doomed_on_remove, gone);
	for (int f = 0; f < 2; f++)
		free(have[f].keys);
	return rc ? rc : had;
}

/* The blocks of a port in a pair of per-port prefix tries (IPv4, IPv6), at most max. Returns the count. */
static int blocks_of(int fd4, int fd6, __u16 port, struct cidr *out, int max)
{
	const int afs[2] = { AF_INET, AF_INET6 }, fds[2] = { fd4, fd6 };
	int n = 0;

	for (int f = 0; f < 2; f++) {
		struct key_set s = { 0 };

		if (!read_keys(fds[f], afs[f], &s))
			for (size_t i = 0; i < s.n && n < max; i++)
				if (key_port(&s.keys[i]) == port)
					key_cidr(&s.keys[i], afs[f], &out[n++]);
		free(s.keys);
	}
	return n;
}

int policy_trust_of(const struct ppbpf_maps *m, __u16 port, struct cidr *out, int max)
{
	return blocks_of(m->trust4, m->trust6, port, out, max);
}

int policy_set_config(const struct ppbpf_maps *m, const struct ppbpf_config *cfg)
{
	__u32 zero = 0;

	return bpf_map_update_elem(m->settings, &zero, cfg, BPF_ANY) ? -errno : 0;
}

/* ---- the sending side: outbound policy by remote port, and destination blocks ----------------- */

static int send_to_fd(const struct ppbpf_maps *m, int af)
{
	return af == AF_INET ? m->send_to4 : m->send_to6;
}

struct send_ctx {
	const struct send_port *ports;
	const int *index;     /* port -> index in ports, -1: not given */
	const __u64 *removed; /* ports whose outbound policy goes */
};

static bool doomed_send_block(const union trust_key *k, int af, const void *arg)
{
	const struct send_ctx *c = arg;
	__u16 port = key_port(k);

	if (c->index[port] >= 0)
		return !key_in_blocks(k, af, c->ports[c->index[port]].to, c->ports[c->index[port]].n_to);
	return c->removed && marked(c->removed, port);
}

/* A port's outbound policy goes: its bit first (sockops stops looking), then the policy. 0 or -errno. */
static int unset_send_port(const struct ppbpf_maps *m, __u16 port)
{
	int rc = set_port_bit(m->send_bits, port, false);

	if (!rc && bpf_map_delete_elem(m->send_ports, &port) && errno != ENOENT)
		rc = -errno;
	return rc;
}

int policy_apply_send(const struct ppbpf_maps *m, const struct send_port *ports, int n, bool exact,
		      __u16 *failed_port)
{
	static __u64 owned[65536 / 64], removed[65536 / 64];
	const int afs[2] = { AF_INET, AF_INET6 };
	struct key_set have[2] = { { 0 } };
	const int fds[2] = { m->send_to4, m->send_to6 };
	struct port_blocks *pb = calloc((size_t)n + 1, sizeof(*pb));
	struct send_ctx ctx = { .ports = ports };
	int *index = NULL, rc;

	for (int i = 0; pb && i < n; i++)
		pb[i] = (struct port_blocks){ ports[i].port, ports[i].to, ports[i].n_to };
	/* 1. new destinations; 2. the policies, then the bits (sockops looks at a port once its bit is set) */
	rc = pb ? begin_apply(fds, pb, n, &index, have, failed_port) : -ENOMEM;
	free(pb);
	ctx.index = index;
	for (int i = 0; !rc && i < n; i++) {
		if (bpf_map_update_elem(m->send_ports, &ports[i].port, &ports[i].pol, BPF_ANY))
			rc = -errno;
		if (!rc)
			rc = set_port_bit(m->send_bits, ports[i].port, true);
		if (rc)
			*failed_port = ports[i].port;
	}
	/* 3. exact: every other port with an outbound policy goes */
	if (!rc && exact) {
		memset(removed, 0, sizeof(removed));
		rc = mark_owned(m->send_ports, &m->send_bits, 1, have, owned);
		for (int port = 0; !rc && port < 65536; port++) {
			if (!marked(owned, (__u16)port) || index[port] >= 0)
				continue;
			mark(removed, (__u16)port);
			rc = unset_send_port(m, (__u16)port);
		}
		ctx.removed = removed;
	}
	/* 4. last, the destinations no port wants any more */
	for (int f = 0; !rc && f < 2; f++)
		rc = delete_keys(send_to_fd(m, afs[f]), afs[f], &have[f], doomed_send_block, &ctx);
	for (int f = 0; f < 2; f++)
		free(have[f].keys);
	free(index);
	return rc;
}

int policy_remove_send_ports(const struct ppbpf_maps *m, const __u16 *ports, int n)
{
	static __u64 gone[65536 / 64];
	const int afs[2] = { AF_INET, AF_INET6 };
	struct key_set have[2] = { { 0 } };
	int rc = 0, had = 0;

	memset(gone, 0, sizeof(gone));
	for (int f = 0; !rc && f < 2; f++)
		rc = read_keys(send_to_fd(m, afs[f]), afs[f], &have[f]);
	for (int i = 0; !rc && i < n; i++) {
		struct ppbpf_send_policy pol;

		had += !bpf_map_lookup_elem(m->send_ports, &ports[i], &pol);
		mark(gone, ports[i]);
		rc = unset_send_port(m, ports[i]);
	}
	for (int f = 0; !rc && f < 2; f++)
		rc = delete_keys(send_to_fd(m, afs[f]), afs[f], &have[f], doomed_on_remove, gone);
	for (int f = 0; f < 2; f++)
		free(have[f].keys);
	return rc ? rc : had;
}

int policy_send_to_of(const struct ppbpf_maps *m, __u16 port, struct cidr *out, int max)
{
	return blocks_of(m->send_to4, m->send_to6, port, out, max);
}
