/* SPDX-License-Identifier: MIT */
/* Port policy and trusted sources in the pinned maps. */
#ifndef PPBPF_CLI_POLICY_H
#define PPBPF_CLI_POLICY_H

#include <stdbool.h>
#include <ppbpf/abi.h>
#include "cidr.h"
#include "loader.h"

/* One port's policy as a command wants it. No trusted block: any source. */
struct policy_port {
	__u16 port;
	struct ppbpf_port_policy pol;
	const struct cidr *trust;
	int n_trust;
};

/*
 * Give these ports exactly these policies and trusted sources. All new
 * trusted blocks are added first (if one cannot be, those added are taken
 * back and nothing has changed), then the policies and port bits are set,
 * and only then are the blocks no longer listed removed, so no port that
 * stays passes through "nobody is trusted". With `exact`, every other port
 * that owns anything in the maps (a policy, a port or rewrite bit, a
 * trusted block) is removed too: the maps then hold these ports and nothing
 * else. 0 or -errno; *failed_port names the port a failure was about (0: none).
 */
int policy_apply(const struct ppbpf_maps *m, const struct policy_port *ports, int n, bool exact, __u16 *failed_port);
/*
 * Remove ports: their bits first (no new connection is tracked), then the
 * policy, then their trusted blocks. A port without anything is no error.
 * Returns how many of them had something, or -errno.
 */
int policy_remove_ports(const struct ppbpf_maps *m, const __u16 *ports, int n);
/* tc stops looking at a port (once its transparent flows are reset). 0 or -errno. */
int policy_unshift_port(const struct ppbpf_maps *m, __u16 port);
/* The trusted sources of a port, at most max. Returns the count. */
int policy_trust_of(const struct ppbpf_maps *m, __u16 port, struct cidr *out, int max);
/* Set the whole-attachment settings. */
int policy_set_config(const struct ppbpf_maps *m, const struct ppbpf_config *cfg);

/* One remote port's outbound policy as a command wants it. No destination block: any destination. */
struct send_port {
	__u16 port;
	struct ppbpf_send_policy pol;
	const struct cidr *to;
	int n_to;
};

/*
 * Give these remote ports exactly these outbound policies and destinations,
 * in the order policy_apply keeps (new blocks, policies, bits, then the old
 * blocks go). With `exact`, every other port's outbound policy goes too.
 * 0 or -errno; *failed_port names the port a failure was about (0: none).
 */
int policy_apply_send(const struct ppbpf_maps *m, const struct send_port *ports, int n, bool exact,
		      __u16 *failed_port);
/* Remove the outbound policy of ports. Returns how many had one, or -errno. */
int policy_remove_send_ports(const struct ppbpf_maps *m, const __u16 *ports, int n);
/* The destination blocks of a remote port, at most max. Returns the count. */
int policy_send_to_of(const struct ppbpf_maps *m, __u16 port, struct cidr *out, int max);

#endif
