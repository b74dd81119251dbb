// SPDX-License-Identifier: MIT
/* The per-socket query ABI of the kernel side (include/ppbpf/abi.h). */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <ppbpf/ppbpf.h>
#include "internal.h"

/* One query; EAGAIN passes through. */
static int get_once(int fd, struct ppbpf_info *out)
{
	socklen_t len = sizeof(*out);

	memset(out, 0, sizeof(*out));
	if (getsockopt(fd, SOL_PPBPF, PPBPF_INFO, out, &len) < 0)
		return errno == EOPNOTSUPP ? -ENOPROTOOPT : -errno;
	return 0;
}

/*
 * How long a socket may stay "about to be tracked": the kernel needs
 * microseconds, but a loaded VM can stall the CPU that sets it up for
 * longer (6.1 under qemu's TCG was seen past 100 ms).
 */
#define SETUP_WAIT_MS 1000
/* Retries that only yield the CPU before sleeping: a sleep costs ~60 us of timer slack. */
#define SETUP_YIELDS 64

int ppbpf_get(int fd, struct ppbpf_info *out)
{
	long deadline = 0;
	int rc, tries = 0;

	/*
	 * EAGAIN: accept() got the socket just before the kernel side set it up
	 * (the softirq that queued it runs sockops next, on another CPU). That
	 * takes microseconds: yield first, sleep only if it lasts.
	 */
	while ((rc = get_once(fd, out)) == -EAGAIN) {
		struct timespec pause = { 0, 20000 };

		if (tries++ < SETUP_YIELDS) {
			sched_yield();
			continue;
		}
		if (!deadline)
			deadline = ppbpf__now_ms() + SETUP_WAIT_MS;
		else if (ppbpf__now_ms() > deadline)
			return -EAGAIN;
		nanosleep(&pause, NULL);
	}
	return rc;
}

int ppbpf_get_tlvs(int fd, void *buf, size_t cap)
{
	unsigned char tmp[PPBPF_TLVS_SIZE];
	socklen_t len = sizeof(tmp);
	__u32 n;

	/* The kernel wants room for the largest answer; copy out what fits. */
	if (getsockopt(fd, SOL_PPBPF, PPBPF_TLVS, tmp, &len) < 0)
		return errno == EOPNOTSUPP ? -ENOPROTOOPT : -errno;
	memcpy(&n, tmp, 4);
	if (len < 4 || n != len - 4 || n > PPBPF_TLV_MAX)
		return -EPROTO;
	if (n > cap)
		return -ENOSPC;
	memcpy(buf, tmp + 4, n);
	return (int)n;
}

void ppbpf_tlv_iter_init_raw(struct ppbpf_tlv_iter *it, const void *tlvs, size_t len)
{
	it->pos = tlvs;
	it->end = it->pos + len;
}

long ppbpf__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Milliseconds left until deadline (-1: none), at least 0. */
static int left_ms(long deadline)
{
	long left;

	if (deadline < 0)
		return -1;
	left = deadline - ppbpf__now_ms();
	return left > 0 ? (int)left : 0;
}

/* Bytes queued on the socket, or -1. */
static int queued(int fd)
{
	int n;

	return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

/*
 * poll() is no proof that `bytes` are queued: POLLIN comes with a FIN (or an
 * error) whatever SO_RCVLOWAT says, and the kernel caps the low-water mark
 * at half the receive buffer. So the queue is measured after every wake, a
 * FIN or an error ends the wait, and a wake with too few bytes lowers the
 * mark to the next byte: every pass of the loop needs new bytes (or 1 ms).
 */
int ppbpf__wait_bytes(int fd, unsigned int bytes, long deadline)
{
	int want = bytes ? (int)bytes : 1, lowat = want, saved = 1, last = -1, woke = 0, rc = 0;
	socklen_t len = sizeof(saved);
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	if (getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &saved, &len) < 0)
		return -errno;
	for (;;) {
		int q = queued(fd), n;

		if (q < 0) {
			rc = -errno;
			break;
		}
		if (q >= want)
			break;
		if (woke) { /* readable with too few bytes and no FIN */
			struct timespec ms = { 0, 1000000 };

			if (q <= last)
				nanosleep(&ms, NULL);
			lowat = q + 1;
		}
		last = q;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) < 0) {
			rc = -errno;
			break;
		}
		do
			n = poll(&p, 1, left_ms(deadline));
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			rc = queued(fd) >= want ? 0 : -ETIMEDOUT;
			break;
		}
		if (p.revents & (POLLERR | POLLNVAL | POLLHUP | POLLRDHUP)) {
			/* no more bytes will come: what is queued is all there is */
			rc = queued(fd) >= want ? 0 : -ECONNRESET;
			break;
		}
		woke = 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &saved, sizeof(saved));
	return rc;
}

/*
 * A verdict can come without a byte to wake the socket: the daemon's sweep
 * makes a silent peer of an optional port plain, or rejects a late header.
 * So the wait asks the kernel again at least this often.
 */
#define REQUERY_MS 50

/* The wait's next poll() timeout: at most REQUERY_MS, and no later than the deadline (-1: none). */
static int requery_in(long deadline)
{
	int left = left_ms(deadline);

	return left < 0 || left > REQUERY_MS ? REQUERY_MS : left;
}

/*
 * While a header is pending, the kernel side holds its bytes back: none is
 * queued before the verdict. So one poll() for POLLIN waits for the verdict,
 * and a wake finds either a verdict, or bytes the kernel side did not see
 * (ESTALE: the socket received data before it was tracked).
 */
int ppbpf_wait(int fd, int timeout_ms, struct ppbpf_info *out)
{
	int rc = ppbpf_get(fd, out);

	return rc ? rc : ppbpf__wait_pending(fd, timeout_ms, out);
}

int ppbpf__wait_pending(int fd, int timeout_ms, struct ppbpf_info *out)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	long deadline = -1;
	int rc = 0;

	if (out->state == PPBPF_STATE_PENDING && timeout_ms >= 0)
		deadline = ppbpf__now_ms() + timeout_ms;
	while (!rc && out->state == PPBPF_STATE_PENDING) {
		int n;

		if (deadline >= 0 && left_ms(deadline) == 0)
			return -ETIMEDOUT; /* after one last query */
		n = poll(&p, 1, requery_in(deadline));
		if (n < 0 && errno != EINTR)
			return -errno;
		rc = ppbpf_get(fd, out);
		if (rc || out->state != PPBPF_STATE_PENDING || n <= 0)
			continue;
		if (p.revents & (POLLERR | POLLNVAL | POLLHUP | POLLRDHUP))
			return -ECONNRESET; /* the peer left (or reset) with the header incomplete */
		if (queued(fd) > (int)out->have)
			return -ESTALE;
		/* readable, yet no byte beyond what the kernel counted: never seen; no spin if it happens */
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return rc;
}

int ppbpf_info_source(const struct ppbpf_info *info, int want_af, struct sockaddr *addr, socklen_t *len)
{
	struct sockaddr_storage ss = {};
	socklen_t n;
	int v4 = info->family == PPBPF_FAM_TCP4 || info->family == PPBPF_FAM_UDP4;
	int v6 = info->family == PPBPF_FAM_TCP6 || info->family == PPBPF_FAM_UDP6;

	if (!v4 && !v6)
		return -EAFNOSUPPORT;
	if (v4 && want_af != AF_INET6) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(info->src_port);
		memcpy(&sin->sin_addr, info->src_addr, 4);
		n = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(info->src_port);
		if (v4) { /* ::ffff:a.b.c.d */
			sin6->sin6_addr.s6_addr[10] = 0xff;
			sin6->sin6_addr.s6_addr[11] = 0xff;
			memcpy(&sin6->sin6_addr.s6_addr[12], info->src_addr, 4);
		} else {
			memcpy(&sin6->sin6_addr, info->src_addr, 16);
		}
		n = sizeof(*sin6);
	}
	/* Like getpeername(): truncate to *len, report the full size. */
	memcpy(addr, &ss, n < *len ? n : *len);
	*len = n;
	return 0;
}

/* The socket's own address family. */
int ppbpf__sock_af(int fd)
{
	int af = AF_UNSPEC;
	socklen_t len = sizeof(af);

	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &af, &len);
	return af;
}

int ppbpf_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct ppbpf_info info;

	if (!ppbpf_get(fd, &info) && info.state == PPBPF_STATE_DONE && info.command == PPBPF_CMD_PROXY &&
	    !ppbpf_info_source(&info, ppbpf__sock_af(fd), addr, len))
		return 0;
	return getpeername(fd, addr, len) < 0 ? -errno : 0;
}
