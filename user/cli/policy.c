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

int cidr_parse(const char *text, struct cidr *out)
{
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	int max;

	if (n >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, text, n);
	addr[n] = '\0';
	memset(out, 0, sizeof(*out));
	if (!ppbpf_parse_ip(AF_INET, addr, out->addr))
		out->af = AF_INET, max = 32;
	else if (!ppbpf_parse_ip(AF_INET6, addr, out->addr))
		out->af = AF_INET6, max = 128;
	else
		return -EINVAL;
	out->bits = max;
	if (slash) {
		char *end;
		long bits = strtol(slash + 1, &end, 10);

		if (!slash[1] || *end || bits < 0 || bits > max)
			return -EINVAL;
		out->bits = (int)bits;
	}
	for (int i = out->bits; i < max; i++) /* clear the host bits */
		out->addr[i / 8] &= (__u8) ~(0x80 >> (i % 8));
	return 0;
}

void cidr_format(const struct cidr *c, char *out, size_t cap)
{
	char txt[PPBPF_ADDRSTRLEN];

	ppbpf_format_ip(c->af, c->addr, txt, sizeof(txt));
	snprintf(out, cap, "%s/%d", txt, c->bits);
}

static int add_trust(const struct ppbpf_maps *m, __u16 port, const struct cidr *c)
{
	__u8 one = 1;

	if (c->af == AF_INET) {
		struct ppbpf_trust4_key k = { .prefixlen = PPBPF_TRUST_PORT_BITS + (__u32)c->bits, .port = htons(port) };

		memcpy(k.addr, c->addr, 4);
		return bpf_map_update_elem(m->trust4, &k, &one, BPF_ANY) ? -errno : 0;
	} else {
		struct ppbpf_trust6_key k = { .prefixlen = PPBPF_TRUST_PORT_BITS + (__u32)c->bits, .port = htons(port) };

		memcpy(k.addr, c->addr, 16);
		return bpf_map_update_elem(m->trust6, &k, &one, BPF_ANY) ? -errno : 0;
	}
}

/* Is this trust key one of the port's new sources? */
static bool key_listed(const void *key, int af, const struct cidr *trust, int n_trust)
{
	const struct ppbpf_trust6_key *k6 = key;
	const struct ppbpf_trust4_key *k4 = key;
	__u32 bits = (af == AF_INET ? k4->prefixlen : k6->prefixlen) - PPBPF_TRUST_PORT_BITS;
	const __u8 *addr = af == AF_INET ? k4->addr : k6->addr;

	for (int i = 0; i < n_trust; i++)
		if (trust[i].af == af && (__u32)trust[i].bits == bits &&
		    !memcmp(trust[i].addr, addr, af == AF_INET ? 4 : 16))
			return true;
	return false;
}

/*
 * Delete the trust keys of port that are not in the new list. New keys are
 * added before this runs, so a live change never passes through "nobody is
 * trusted" (which a port that rejects untrusted peers would act on).
 */
static int prune_trust(int fd, int af, __u16 port, const struct cidr *trust, int n_trust)
{
	size_t key_size = af == AF_INET ? sizeof(struct ppbpf_trust4_key) : sizeof(struct ppbpf_trust6_key);
	unsigned char key[sizeof(struct ppbpf_trust6_key)], next[sizeof(struct ppbpf_trust6_key)];
	unsigned char doomed[64][sizeof(struct ppbpf_trust6_key)];
	int n, more = 1;

	/* Collect a batch, delete it, start over: deleting while walking a trie skips keys. */
	while (more) {
		void *prev = NULL;

		n = 0;
		more = 0;
		while (!bpf_map_get_next_key(fd, prev, next)) {
			memcpy(key, next, key_size);
			prev = key;
			if (((struct ppbpf_trust4_key *)key)->port != htons(port) || key_listed(key, af, trust, n_trust))
				continue;
			if (n == 64) {
				more = 1;
				break;
			}
			memcpy(doomed[n++], key, key_size);
		}
		for (int i = 0; i < n; i++)
			if (bpf_map_delete_elem(fd, doomed[i]) && errno != ENOENT)
				return -errno;
	}
	return 0;
}

/* Set or clear a port's bit in a per-port bitmap map. */
static int set_port_bit(int fd, __u16 port, bool on)
{
	__u32 word = port >> 6;
	__u64 bits = 0;

	bpf_map_lookup_elem(fd, &word, &bits);
	if (on)
		bits |= 1ull << (port & 63);
	else
		bits &= ~(1ull << (port & 63));
	return bpf_map_update_elem(fd, &word, &bits, BPF_ANY) ? -errno : 0;
}

int policy_set_port(const struct ppbpf_maps *m, __u16 port, const struct ppbpf_port_policy *pol,
		    const struct cidr *trust, int n_trust)
{
	static const struct cidr any[2] = { { .af = AF_INET }, { .af = AF_INET6 } };
	int rc = 0;

	if (!n_trust) { /* no list: any source */
		trust = any;
		n_trust = 2;
	}
	/* Trust first: a new port must not be live before its sources are known. */
	for (int i = 0; !rc && i < n_trust; i++)
		rc = add_trust(m, port, &trust[i]);
	if (!rc)
		rc = prune_trust(m->trust4, AF_INET, port, trust, n_trust);
	if (!rc)
		rc = prune_trust(m->trust6, AF_INET6, port, trust, n_trust);
	if (!rc && bpf_map_update_elem(m->ports, &port, pol, BPF_ANY))
		rc = -errno;
	if (!rc)
		rc = set_port_bit(m->rewrite_bits, port, pol->flags & PPBPF_PORT_REWRITE_PEER);
	if (!rc) /* last: the ingress hook starts looking at the port once its bit is set */
		rc = set_port_bit(m->port_bits, port, true);
	return rc;
}

int policy_trust_of(const struct ppbpf_maps *m, __u16 port, struct cidr *out, int max)
{
	int fds[2] = { m->trust4, m->trust6 }, n = 0;

	for (int t = 0; t < 2; t++) {
		struct ppbpf_trust6_key key, next;
		void *prev = NULL;

		while (n < max && !bpf_map_get_next_key(fds[t], prev, &next)) {
			key = next;
			prev = &key;
			if (key.port != htons(port))
				continue;
			memset(&out[n], 0, sizeof(out[n]));
			out[n].af = t ? AF_INET6 : AF_INET;
			out[n].bits = (int)key.prefixlen - PPBPF_TRUST_PORT_BITS;
			memcpy(out[n].addr, key.addr, t ? 16 : 4);
			n++;
		}
	}
	return n;
}

int policy_set_config(const struct ppbpf_maps *m, const struct ppbpf_config *cfg)
{
	__u32 zero = 0;

	return bpf_map_update_elem(m->settings, &zero, cfg, BPF_ANY) ? -errno : 0;
}
