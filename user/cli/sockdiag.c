// SPDX-License-Identifier: MIT
/*
 * SOCK_DESTROY over NETLINK_SOCK_DIAG: how `ppbpf run` resets rejected
 * connections where the kernel has no bpf_sock_destroy kfunc (before 6.5).
 * The kernel finds the socket by its 4-tuple and checks its cookie, then
 * aborts it as tcp_abort() does. Needs CAP_NET_ADMIN and
 * CONFIG_INET_DIAG_DESTROY (Debian's and Amazon Linux's kernels have it).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "sockdiag.h"

int reset_target_parse(const char *line, struct reset_target *t)
{
	char local[64], remote[64];
	unsigned long long cookie;
	unsigned int lport, rport;
	int error, family, end = 0;

	memset(t, 0, sizeof(*t));
	if (sscanf(line, "%llu %d %d %63s %u %63s %u%n", &cookie, &error, &family, local, &lport, remote, &rport,
		   &end) != 7 || (line[end] != '\0' && line[end] != '\n'))
		return -EINVAL;
	if ((family != AF_INET && family != AF_INET6) || lport > 65535 || rport > 65535 ||
	    inet_pton(family, local, t->local) != 1 || inet_pton(family, remote, t->remote) != 1)
		return -EINVAL;
	t->cookie = cookie;
	t->error = error;
	t->family = family;
	t->local_port = (__u16)lport;
	t->remote_port = (__u16)rport;
	return 0;
}

int sockdiag_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

	return fd < 0 ? -errno : fd;
}

int sockdiag_destroy(int fd, const struct reset_target *t)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nh = { .nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DESTROY, .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK },
		.req = { .sdiag_family = (__u8)t->family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0u },
	};
	struct {
		struct nlmsghdr nh;
		struct nlmsgerr err;
	} ack;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	static __u32 seq;
	ssize_t n;

	msg.nh.nlmsg_seq = ++seq;
	/* id.idiag_src is the socket's own end, as `ss` shows it */
	msg.req.id.idiag_sport = htons(t->local_port);
	msg.req.id.idiag_dport = htons(t->remote_port);
	memcpy(msg.req.id.idiag_src, t->local, t->family == AF_INET ? 4 : 16);
	memcpy(msg.req.id.idiag_dst, t->remote, t->family == AF_INET ? 4 : 16);
	msg.req.id.idiag_cookie[0] = (__u32)t->cookie;
	msg.req.id.idiag_cookie[1] = (__u32)(t->cookie >> 32);
	if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	do {
		n = recv(fd, &ack, sizeof(ack), 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n < (ssize_t)sizeof(ack) || ack.nh.nlmsg_type != NLMSG_ERROR || ack.nh.nlmsg_seq != msg.nh.nlmsg_seq)
		return -EPROTO;
	return ack.err.error; /* 0, or -errno */
}

/* A connected pair on loopback: *server is the accepted end. 0 or -errno. */
static int loopback_pair(int *client, int *server)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;

	*client = *server = -1;
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len) ||
	    (*client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(*client, (struct sockaddr *)&a, sizeof(a)) || (*server = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
		rc = -errno;
	close(l);
	return rc;
}

/* The reset target of a connected socket: its endpoints and cookie. 0 or -errno. */
static int target_of(int fd, struct reset_target *t)
{
	struct sockaddr_in local, remote;
	socklen_t ll = sizeof(local), rl = sizeof(remote), cl = sizeof(t->cookie);

	memset(t, 0, sizeof(*t));
	if (getsockname(fd, (struct sockaddr *)&local, &ll) || getpeername(fd, (struct sockaddr *)&remote, &rl) ||
	    getsockopt(fd, SOL_SOCKET, SO_COOKIE, &t->cookie, &cl))
		return -errno;
	t->family = AF_INET;
	memcpy(t->local, &local.sin_addr, 4);
	memcpy(t->remote, &remote.sin_addr, 4);
	t->local_port = ntohs(local.sin_port);
	t->remote_port = ntohs(remote.sin_port);
	return 0;
}

int sockdiag_probe(int fd)
{
	struct reset_target t;
	int client, server, rc, so_error = 0;
	socklen_t len = sizeof(so_error);

	rc = loopback_pair(&client, &server);
	if (!rc)
		rc = target_of(server, &t);
	if (!rc)
		rc = sockdiag_destroy(fd, &t);
	if (!rc && (getsockopt(server, SOL_SOCKET, SO_ERROR, &so_error, &len) || so_error != ECONNABORTED))
		rc = -EPROTO; /* the kernel said yes, but the socket was not aborted */
	if (client >= 0)
		close(client);
	if (server >= 0)
		close(server);
	return rc;
}
