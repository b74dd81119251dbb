// SPDX-License-Identifier: MIT
/* ppbpf_relay: an inbound socket's original client written as the first bytes of an outgoing one. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <ppbpf/ppbpf.h>
#include "internal.h"

/* errno of a SOL_PPBPF call: EOPNOTSUPP is TCP's answer where ppbpf is not attached. */
static int sockopt_errno(void)
{
	return errno == EOPNOTSUPP ? -ENOPROTOOPT : -errno;
}

int ppbpf_relay_token(int in_fd, __u64 *token)
{
	socklen_t len = sizeof(*token);

	*token = 0;
	if (getsockopt(in_fd, SOL_PPBPF, PPBPF_RELAY_TOKEN, token, &len) < 0)
		return sockopt_errno();
	return len == sizeof(*token) && *token ? 0 : -EPROTO;
}

int ppbpf_relay_with(int out_fd, __u64 token, unsigned int flags)
{
	struct ppbpf_relay req = { .token = token, .flags = flags };

	if (flags & ~PPBPF_RELAY_FLAGS)
		return -EINVAL;
	if (setsockopt(out_fd, SOL_PPBPF, PPBPF_RELAY, &req, sizeof(req)) < 0)
		return sockopt_errno();
	return 0;
}

int ppbpf_relay(int in_fd, int out_fd, unsigned int flags)
{
	__u64 token;
	int rc = ppbpf_relay_token(in_fd, &token);

	return rc ? rc : ppbpf_relay_with(out_fd, token, flags);
}
