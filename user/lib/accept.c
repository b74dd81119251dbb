// SPDX-License-Identifier: MIT
/*
 * ppbpf_accept(): accept, make sure the header is judged (by the kernel
 * record, or by parsing in userspace where the kernel side is absent),
 * consume exactly its bytes, and report the original source.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <ppbpf/ppbpf.h>
#include "internal.h"

static struct ppbpf_accept_stats stats;

#define STAT_INC(field) __atomic_fetch_add(&stats.field, 1, __ATOMIC_RELAXED)

void ppbpf_accept_stats(struct ppbpf_accept_stats *out)
{
	out->kernel = __atomic_load_n(&stats.kernel, __ATOMIC_RELAXED);
	out->userspace = __atomic_load_n(&stats.userspace, __ATOMIC_RELAXED);
	out->plain = __atomic_load_n(&stats.plain, __ATOMIC_RELAXED);
	out->rejected = __atomic_load_n(&stats.rejected, __ATOMIC_RELAXED);
	out->timed_out = __atomic_load_n(&stats.timed_out, __ATOMIC_RELAXED);
}

/* Read and drop exactly n bytes that are already (or soon) queued. 0 or -errno. */
static int consume(int fd, size_t n, long deadline)
{
	unsigned char sink[4096];

	while (n) {
		ssize_t r = recv(fd, sink, n < sizeof(sink) ? n : sizeof(sink), MSG_DONTWAIT);

		if (r > 0) {
			n -= (size_t)r;
		} else if (r == 0) {
			return -ECONNRESET;
		} else if (errno == EAGAIN) {
			int rc = ppbpf__wait_bytes(fd, 1, deadline);

			if (rc)
				return rc;
		} else if (errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

/* The kernel record of a header in a parsed struct. */
static void info_from_hdr(struct ppbpf_info *info, const struct ppbpf_hdr *h)
{
	memset(info, 0, sizeof(*info));
	info->abi = PPBPF_ABI_VERSION;
	info->size = sizeof(*info);
	info->state = PPBPF_STATE_DONE;
	info->version = h->version;
	info->command = h->command;
	info->family = h->family;
	info->header_len = h->header_len;
	info->have = h->header_len;
	info->src_port = h->src_port;
	info->dst_port = h->dst_port;
	memcpy(info->src_addr, h->src_addr, 16);
	memcpy(info->dst_addr, h->dst_addr, 16);
	info->tlv_len = h->tlv_len;
}

/* Keep the header's TLVs up to the kernel side's default cap, so both give the same answer. */
static void keep_tlvs(const unsigned char *buf, const struct ppbpf_hdr *h, struct ppbpf_info *info,
		      struct ppbpf_accept_opts *opts)
{
	size_t n = h->tlv_len < PPBPF_TLV_CAP_DEFAULT ? h->tlv_len : PPBPF_TLV_CAP_DEFAULT;

	info->tlv_stored = (__u32)n;
	if (n < h->tlv_len)
		info->flags |= PPBPF_INFO_TLV_TRUNCATED;
	if (!opts || !opts->tlvs)
		return;
	if (n > opts->tlvs_cap)
		n = opts->tlvs_cap;
	memcpy(opts->tlvs, buf + h->tlv_off, n);
	opts->tlvs_len = n;
}

/*
 * Userspace fallback: peek until the parser has a verdict, then consume the
 * header. 0 with *info filled, -EPROTO for an invalid header, or -errno.
 */
static int parse_in_userspace(int fd, long deadline, struct ppbpf_info *info, struct ppbpf_accept_opts *opts)
{
	size_t cap = 512;
	unsigned char *buf = malloc(cap);
	struct ppbpf_hdr h;
	int rc;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = recv(fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
		unsigned int want = 1;

		if (n == 0) {
			rc = -ECONNRESET;
			break;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (n > 0) {
			rc = ppbpf_parse(buf, (__u32)n, &h);
			if (rc > 0) {
				info_from_hdr(info, &h);
				keep_tlvs(buf, &h, info, opts);
				rc = consume(fd, (size_t)rc, deadline);
				break;
			}
			if (rc != PPBPF_E_INCOMPLETE) {
				info->state = PPBPF_STATE_ERROR;
				info->error = rc;
				rc = -EPROTO;
				break;
			}
			want = (unsigned int)n + h.need;
			if (want > cap) { /* a long v2 header: room for what it says it needs */
				unsigned char *bigger = realloc(buf, want);

				if (!bigger) {
					rc = -ENOMEM;
					break;
				}
				buf = bigger;
				cap = want;
			}
		}
		rc = ppbpf__wait_bytes(fd, want, deadline);
		if (rc)
			break;
	}
	free(buf);
	return rc;
}

/* Make the connection ready to return. 0, or < 0 to close it and accept the next. */
static int take_header(int fd, int timeout_ms, struct ppbpf_accept_opts *opts, struct ppbpf_info *info)
{
	long deadline = ppbpf__now_ms() + timeout_ms;
	int rc = ppbpf_get(fd, info);

	if (rc == -ENOPROTOOPT && !(opts && opts->no_fallback)) {
		rc = parse_in_userspace(fd, deadline, info, opts);
		if (!rc)
			STAT_INC(userspace);
		else if (rc == -ETIMEDOUT)
			STAT_INC(timed_out);
		else
			STAT_INC(rejected);
		return rc;
	}
	if (rc == -ENODATA || rc == -ENOPROTOOPT) { /* untracked here: untouched, nothing honoured */
		memset(info, 0, sizeof(*info));
		STAT_INC(plain);
		return 0;
	}
	if (rc) { /* e.g. tracked but never set up (the kernel had no room): fail closed */
		STAT_INC(rejected);
		return rc;
	}
	if (info->state == PPBPF_STATE_PENDING) {
		rc = ppbpf_wait(fd, timeout_ms, info);
		if (rc == -ESTALE) { /* the peer is trusted (it is tracked): the same parser, here */
			rc = parse_in_userspace(fd, deadline, info, opts);
			if (!rc)
				STAT_INC(userspace);
			else
				STAT_INC(rejected);
			return rc;
		}
		if (rc) {
			STAT_INC(timed_out);
			return rc;
		}
	}
	switch (info->state) {
	case PPBPF_STATE_DONE:
		if (opts && opts->tlvs && info->tlv_stored) {
			rc = ppbpf_get_tlvs(fd, opts->tlvs, opts->tlvs_cap);
			opts->tlvs_len = rc > 0 ? (size_t)rc : 0;
		}
		rc = consume(fd, info->header_len, deadline);
		if (!rc)
			STAT_INC(kernel);
		return rc;
	case PPBPF_STATE_PLAIN:
		STAT_INC(plain);
		return 0;
	default:
		STAT_INC(rejected);
		return -EPROTO;
	}
}

/* Close a connection that is not handed out with an RST, so the peer learns it was refused. */
static void reset_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

int ppbpf_accept_opts(int listen_fd, struct sockaddr *orig, socklen_t *len, int flags,
		      struct ppbpf_accept_opts *opts)
{
	int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : PPBPF_ACCEPT_TIMEOUT_MS;

	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		struct ppbpf_info info;
		int fd = accept4(listen_fd, (struct sockaddr *)&peer, &plen, flags);

		if (fd < 0)
			return -1;
		if (opts)
			opts->tlvs_len = 0;
		if (take_header(fd, timeout, opts, &info)) {
			reset_close(fd); /* never handed out: the application sees no byte of it */
			continue;
		}
		if (opts && opts->info)
			*opts->info = info;
		if (orig && len) {
			/* The kernel may already have rewritten peer; the record says what is original. */
			if (info.state != PPBPF_STATE_DONE || info.command != PPBPF_CMD_PROXY ||
			    ppbpf_info_source(&info, peer.ss_family, orig, len)) {
				memcpy(orig, &peer, plen < *len ? plen : *len);
				*len = plen;
			}
		}
		return fd;
	}
}

int ppbpf_accept(int listen_fd, struct sockaddr *orig, socklen_t *len, int flags)
{
	return ppbpf_accept_opts(listen_fd, orig, len, flags, NULL);
}
