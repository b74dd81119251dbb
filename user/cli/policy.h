/* SPDX-License-Identifier: MIT */
/* Port policy and trusted sources in the pinned maps. */
#ifndef PPBPF_CLI_POLICY_H
#define PPBPF_CLI_POLICY_H

#include <ppbpf/abi.h>
#include "loader.h"

/* An address block. */
struct cidr {
	int af;        /* AF_INET or AF_INET6 */
	__u8 addr[16]; /* network order, host bits cleared */
	int bits;
};

/* "192.0.2.0/24", "2001:db8::/32", or a bare address. 0 or -EINVAL. */
int cidr_parse(const char *text, struct cidr *out);
/* Text of a CIDR. */
void cidr_format(const struct cidr *c, char *out, size_t cap);

/* Set the policy of one port and replace its trusted sources (none given: any source). */
int policy_set_port(const struct ppbpf_maps *m, __u16 port, const struct ppbpf_port_policy *pol,
		    const struct cidr *trust, int n_trust);
/* The trusted sources of a port, at most max. Returns the count. */
int policy_trust_of(const struct ppbpf_maps *m, __u16 port, struct cidr *out, int max);
/* Set the whole-attachment settings. */
int policy_set_config(const struct ppbpf_maps *m, const struct ppbpf_config *cfg);

#endif
