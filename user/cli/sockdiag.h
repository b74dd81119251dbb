/* SPDX-License-Identifier: MIT */
/* Resetting a TCP socket from userspace, as `ss -K` does: SOCK_DESTROY over NETLINK_SOCK_DIAG. */
#ifndef PPBPF_CLI_SOCKDIAG_H
#define PPBPF_CLI_SOCKDIAG_H

#include <linux/types.h>

/* A socket to reset, as the sweep names it. */
struct reset_target {
	__u64 cookie;   /* checked by the kernel: a reused 4-tuple is never hit */
	int error;      /* why it was rejected (PPBPF_E_*) */
	int family;     /* the socket's own: AF_INET or AF_INET6 */
	__u8 local[16], remote[16]; /* network order; AF_INET: the first 4 bytes */
	__u16 local_port, remote_port;
};

/*
 * Read a sweep line that asks for a reset: "<cookie> <error> <family>
 * <local> <lport> <remote> <rport>". 0, or -EINVAL for any other line.
 */
int reset_target_parse(const char *line, struct reset_target *t);
/* A NETLINK_SOCK_DIAG socket, or -errno. */
int sockdiag_open(void);
/*
 * Abort the socket: an RST to the peer, ECONNABORTED to its owner. 0 or
 * -errno: -EOPNOTSUPP without CONFIG_INET_DIAG_DESTROY, -ENOENT if it is
 * gone, -ESTALE if its 4-tuple now belongs to another socket.
 */
int sockdiag_destroy(int fd, const struct reset_target *t);
/*
 * Can this process reset sockets with fd? A loopback connection made for the
 * purpose is reset and checked. 0, or -errno (as sockdiag_destroy; -ENOENT
 * also when tcp_diag could not be loaded).
 */
int sockdiag_probe(int fd);

#endif
