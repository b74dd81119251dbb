// SPDX-License-Identifier: MIT
/*
 * ppbpf_accept(): accept, make sure the header is judged (by the kernel
 * record, or by parsing in userspace where the kernel side is absent),
 * consume exactly its bytes, and report the original source.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <ppbpf/ppbpf.h>
#include <ppbpf/record.h>
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

/* The kernel side's limit on a header: the fallback refuses what the kernel would. */
#define FALLBACK_MAX_HEADER PPBPF_BPF_BUF_SIZE

/*
 * Read and drop exactly the n header bytes, which are queued (or soon are);
 * with opts->data, the bytes after them that have come too, in the same
 * read. 0 or -errno.
 */
static int consume(int fd, size_t n, long deadline, struct ppbpf_accept_opts *opts)
{
	unsigned char sink[FALLBACK_MAX_HEADER];
	int want_data = opts && opts->data && opts->data_cap;

	while (n) {
		size_t take = n < sizeof(sink) ? n : sizeof(sink);
		struct iovec iov[2] = { { sink, take }, { want_data ? opts->data : NULL, want_data ? opts->data_cap : 0 } };
		/* TCP fills the second buffer only once the first is full: it gets no header byte */
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = take == n && want_data ? 2 : 1 };
		ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT);

		if (r > 0) {
			if ((size_t)r > take)
				opts->data_len = (size_t)r - take;
			n -= (size_t)r < take ? (size_t)r : take;
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

/* The record the kernel side would keep for a header judged in userspace. */
static void info_from_hdr(struct ppbpf_info *info, const struct ppbpf_hdr *h)
{
	memset(info, 0, sizeof(*info));
	info->abi = PPBPF_ABI_VERSION;
	info->size = sizeof(*info);
	info->state = PPBPF_STATE_DONE;
	info->have = h->header_len;
	ppbpf_record_header(info, h);
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
 * header. 0 with *info filled, -EPROTO for an invalid header, -ECONNRESET if
 * the peer closed before the header was whole, -ETIMEDOUT, or -errno.
 */
static int parse_in_userspace(int fd, long deadline, struct ppbpf_info *info, struct ppbpf_accept_opts *opts)
{
	unsigned char buf[FALLBACK_MAX_HEADER];
	struct ppbpf_hdr h;
	int closed = 0, rc;

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);

		if (n == 0)
			return -ECONNRESET; /* closed before sending anything */
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -errno;
			n = 0;
		}
		rc = ppbpf_parse_max(buf, (__u32)n, sizeof(buf), &h);
		if (rc > 0) {
			info_from_hdr(info, &h);
			keep_tlvs(buf, &h, info, opts);
			return consume(fd, (size_t)rc, deadline, opts);
		}
		if (rc != PPBPF_E_INCOMPLETE) {
			memset(info, 0, sizeof(*info));
			info->state = PPBPF_STATE_ERROR;
			info->error = rc;
			return -EPROTO;
		}
		if (closed)
			return -ECONNRESET; /* the peer closed before the header was whole */
		/* (the parser bounds need: at most FALLBACK_MAX_HEADER bytes in all) */
		rc = ppbpf__wait_bytes(fd, (unsigned int)n + h.need, deadline);
		if (rc == -ECONNRESET)
			closed = 1; /* no more bytes will come: judge what came with the FIN, once */
		else if (rc)
			return rc;
	}
}

/* ---- the fallback's trust list ------------------------------------------------------ */

/* Do the first `bits` bits of a and b agree? */
static int prefix_equal(const __u8 *a, const __u8 *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;
	__u8 mask = (__u8)(0xff << (8 - rest));

	return !memcmp(a, b, (size_t)whole) && (!rest || !((a[whole] ^ b[whole]) & mask));
}

/*
 * Is the address (af AF_INET: 4 bytes, AF_INET6: 16) in the list of
 * addresses and CIDRs, separated by commas or white space? 1 or 0, or
 * -EINVAL if an entry is neither (addr NULL: only check the list). Entries
 * follow the CLI's --trust: dotted quads without leading zeros, RFC 4291
 * IPv6, a prefix length up to 32 or 128.
 */
static int trust_list_match(const char *list, int af, const __u8 *addr)
{
	static const char seps[] = ", \t\r\n";
	const char *p = list;
	int found = 0;

	while (*p) {
		size_t n = strcspn(p, seps);
		char item[PPBPF_ADDRSTRLEN + 5], *slash;
		__u8 net[16];
		int iaf, max, bits;

		if (!n) {
			p++;
			continue;
		}
		if (n >= sizeof(item))
			return -EINVAL;
		memcpy(item, p, n);
		item[n] = '\0';
		p += n;
		slash = strchr(item, '/');
		if (slash)
			*slash++ = '\0';
		if (!ppbpf_parse_ip(AF_INET, item, net))
			iaf = AF_INET, max = 32;
		else if (!ppbpf_parse_ip(AF_INET6, item, net))
			iaf = AF_INET6, max = 128;
		else
			return -EINVAL;
		bits = max;
		if (slash) {
			char *end;
			long v;

			if (!isdigit((unsigned char)*slash))
				return -EINVAL;
			v = strtol(slash, &end, 10);
			if (*end || v > max)
				return -EINVAL;
			bits = (int)v;
		}
		if (addr && iaf == af && prefix_equal(net, addr, bits))
			found = 1;
	}
	return found;
}

/* The trust list of the fallback for this call: NULL if the fallback is off. */
static const char *fallback_trust(const struct ppbpf_accept_opts *opts)
{
	if (opts && opts->no_fallback)
		return NULL;
	if (opts && opts->fallback_trust)
		return opts->fallback_trust;
	return secure_getenv(PPBPF_FALLBACK_TRUST_ENV);
}

/* Is the TCP peer in the trust list? An IPv4 peer of a dual-stack socket is matched as IPv4. */
static int peer_trusted(const char *trust, const struct sockaddr_storage *peer)
{
	if (!trust)
		return 0;
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)peer;

		return trust_list_match(trust, AF_INET, (const __u8 *)&in->sin_addr) == 1;
	}
	if (peer->ss_family == AF_INET6) {
		const __u8 *a = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
		static const __u8 mapped[12] = { [10] = 0xff, [11] = 0xff };

		if (!memcmp(a, mapped, sizeof(mapped)))
			return trust_list_match(trust, AF_INET, a + 12) == 1;
		return trust_list_match(trust, AF_INET6, a) == 1;
	}
	return 0;
}

/* Count why a connection was closed: too late (or the peer left first), or refused. */
static void count_closed(int rc)
{
	if (rc == -ETIMEDOUT || rc == -ECONNRESET)
		STAT_INC(timed_out);
	else
		STAT_INC(rejected);
}

/* Make the connection ready to return. 0, or < 0 to close it and accept the next. */
static int take_header(int fd, const struct sockaddr_storage *peer, int timeout_ms, const char *trust,
		       struct ppbpf_accept_opts *opts, struct ppbpf_info *info)
{
	long deadline = ppbpf__now_ms() + timeout_ms, floor;
	int rc = ppbpf_get(fd, info);

	if (rc == -ENOPROTOOPT && peer_trusted(trust, peer)) { /* not attached: the same, in userspace */
		rc = parse_in_userspace(fd, deadline, info, opts);
		if (!rc)
			STAT_INC(userspace);
		else
			count_closed(rc);
		return rc;
	}
	if (rc == -ENODATA || rc == -ENOPROTOOPT) {
		/* untracked, or not attached and no trust list for the peer: untouched, nothing honoured */
		memset(info, 0, sizeof(*info));
		STAT_INC(plain);
		return 0;
	}
	if (rc) { /* e.g. tracked but never set up (the kernel had no room): fail closed */
		STAT_INC(rejected);
		return rc;
	}
	if (info->state == PPBPF_STATE_PENDING) {
		rc = ppbpf__wait_pending(fd, timeout_ms, info);
		/*
		 * A peer that has sent nothing may yet be made plain (an optional
		 * port) by the sweep of `ppbpf run`, up to --sweep-ms after the
		 * port's timeout: ask a little longer before giving up. Still
		 * pending then, it is closed: the kernel has not decided, and a
		 * connection it may still reject (or judge a late header on) is
		 * never handed out.
		 */
		if (rc == -ETIMEDOUT && info->state == PPBPF_STATE_PENDING && info->have == 0)
			rc = ppbpf_wait(fd, PPBPF_ACCEPT_GRACE_MS, info);
		/*
		 * ESTALE: bytes reached the socket that the kernel side did not
		 * see. The record does not say the port's --versions or
		 * --max-header, so userspace cannot judge them as the kernel
		 * would: refuse, never weaker than the kernel.
		 */
		if (rc) {
			count_closed(rc);
			return rc;
		}
	}
	switch (info->state) {
	case PPBPF_STATE_DONE:
		if (opts && opts->tlvs && info->tlv_stored) {
			rc = ppbpf_get_tlvs(fd, opts->tlvs, opts->tlvs_cap);
			opts->tlvs_len = rc > 0 ? (size_t)rc : 0;
		}
		if (info->flags & PPBPF_INFO_REMOVED) { /* transparent mode: no header byte reaches the socket */
			if (opts)
				opts->data_len = 0;
			STAT_INC(kernel);
			return 0;
		}
		/* judged: the header's bytes are on their way (resent at once if some were held) */
		floor = ppbpf__now_ms() + PPBPF_ACCEPT_GRACE_MS;
		rc = consume(fd, info->header_len, deadline > floor ? deadline : floor, opts);
		if (!rc)
			STAT_INC(kernel);
		else
			count_closed(rc);
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
	const char *trust = fallback_trust(opts);

	/* A trust list that does not parse is an error now, not a surprise when the fallback is needed. */
	if (trust && trust_list_match(trust, AF_UNSPEC, NULL) < 0) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		struct ppbpf_info info;
		int fd = accept4(listen_fd, (struct sockaddr *)&peer, &plen, flags);

		if (fd < 0)
			return -1;
		if (opts)
			opts->tlvs_len = opts->data_len = 0;
		if (take_header(fd, &peer, timeout, trust, opts, &info)) {
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
