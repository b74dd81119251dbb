/* SPDX-License-Identifier: MIT */
/*
 * libppbpf: the PROXY protocol in userspace.
 *
 * Parsing itself is header-only (ppbpf/parse.h, the same code the BPF
 * programs run): call ppbpf_parse(). This library adds what only userspace
 * needs: error texts, a builder, TLV iteration and decoding, address
 * formatting, and the per-socket query of the kernel side (ppbpf_get,
 * ppbpf_accept), with a userspace fallback where it is not attached (off
 * unless given a trust list).
 *
 * Functions return a negative errno on failure unless stated otherwise.
 */
#ifndef PPBPF_H
#define PPBPF_H

#include <stddef.h>
#include <sys/socket.h>
#include <ppbpf/parse.h>
#include <ppbpf/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PPBPF_API __attribute__((visibility("default")))

/* ---- status codes --------------------------------------------------------- */

/* A sentence describing a ppbpf_parse() status (any int is accepted). */
PPBPF_API const char *ppbpf_strerror(int status);
/* The stable short name of a status ("v1_bad_port"), as the CLI prints it; NULL if unknown. */
PPBPF_API const char *ppbpf_errname(int status);

/* ---- families and addresses ------------------------------------------------- */

/* Longest text ppbpf_format_ip() writes, NUL included. */
#define PPBPF_ADDRSTRLEN 46

/* "TCP4", "UNIX", "UNSPEC", ... for an enum ppbpf_family; NULL if out of range. */
PPBPF_API const char *ppbpf_family_name(int family);
/* AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC for an enum ppbpf_family. */
PPBPF_API int ppbpf_family_af(int family);

/*
 * Canonical text of an AF_INET or AF_INET6 address (RFC 5952 for IPv6:
 * lower case, longest zero run of two or more groups as "::", v4-mapped as
 * ::ffff:a.b.c.d). Returns the text length, -EAFNOSUPPORT or -ENOSPC.
 */
PPBPF_API int ppbpf_format_ip(int af, const void *addr, char *out, size_t cap);
/*
 * Strict text to address, with the rules of a v1 header: dotted quad without
 * leading zeros, or RFC 4291 IPv6. Writes 4 or 16 bytes. Returns 0 or -EINVAL.
 */
PPBPF_API int ppbpf_parse_ip(int af, const char *text, void *out);

/* ---- TLVs ------------------------------------------------------------------- */

/* One TLV; value points into the parsed buffer. */
struct ppbpf_tlv {
	__u8 type;
	__u16 len;
	const __u8 *value;
};

/* A cursor over a list of TLVs (top level, or the sub-TLVs of an SSL TLV). */
struct ppbpf_tlv_iter {
	const __u8 *pos;
	const __u8 *end;
};

/* Iterate the TLVs of a header that ppbpf_parse() accepted from buf. */
PPBPF_API void ppbpf_tlv_iter_init(struct ppbpf_tlv_iter *it, const void *buf, const struct ppbpf_hdr *h);
/* Iterate the sub-TLVs of an SSL TLV. Returns 0, or -EINVAL if t is no valid SSL TLV. */
PPBPF_API int ppbpf_ssl_iter_init(struct ppbpf_tlv_iter *it, const struct ppbpf_tlv *t);
/* Next TLV: 1 with *out set, 0 at the end, -EBADMSG if the list is malformed. */
PPBPF_API int ppbpf_tlv_next(struct ppbpf_tlv_iter *it, struct ppbpf_tlv *out);
/* First TLV of a type: 1 with *out set, 0 if absent. */
PPBPF_API int ppbpf_tlv_find(const void *buf, const struct ppbpf_hdr *h, __u8 type, struct ppbpf_tlv *out);
/* First SSL sub-TLV of a type: 1 with *out set, 0 if absent, -EINVAL if ssl is no SSL TLV. */
PPBPF_API int ppbpf_ssl_find(const struct ppbpf_tlv *ssl, __u8 subtype, struct ppbpf_tlv *out);
/* The client bit field and verify result of an SSL TLV. 0 or -EINVAL. */
PPBPF_API int ppbpf_ssl_head(const struct ppbpf_tlv *ssl, __u8 *client, __u32 *verify);

/* "ALPN", "SSL", "AWS", ... for a TLV type; NULL if unregistered. */
PPBPF_API const char *ppbpf_tlv_name(__u8 type);
/* "VERSION", "CN", ... for an SSL sub-TLV type; NULL if unregistered. */
PPBPF_API const char *ppbpf_ssl_sub_name(__u8 type);

/*
 * AWS VPC endpoint id (type 0xEA, subtype 0x01) as a NUL-terminated string.
 * Returns its length, -ENOENT if t is not one, -ENOSPC if cap is too small.
 */
PPBPF_API int ppbpf_aws_vpce_id(const struct ppbpf_tlv *t, char *out, size_t cap);
/* Azure private endpoint link id (type 0xEE, subtype 0x01). 0 or -ENOENT. */
PPBPF_API int ppbpf_azure_link_id(const struct ppbpf_tlv *t, __u32 *out);
/* GCP Private Service Connect connection id (type 0xE0, 8 bytes). 0 or -ENOENT. */
PPBPF_API int ppbpf_gcp_psc_id(const struct ppbpf_tlv *t, __u64 *out);

/* ---- building ----------------------------------------------------------------- */

/* Append a CRC32C TLV and fill it in (v2). */
#define PPBPF_BUILD_CRC32C 0x1

/* What ppbpf_build() writes. Zero-initialise, then set what applies. */
struct ppbpf_build {
	__u8 version; /* 1 or 2 */
	__u8 command; /* PPBPF_CMD_PROXY, or PPBPF_CMD_LOCAL (v2 only) */
	__u8 family;  /* enum ppbpf_family; v1 takes TCP4, TCP6, UNKNOWN */
	__u16 src_port, dst_port;   /* host order */
	__u8 src_addr[16], dst_addr[16]; /* network order; IPv4 in the first 4 bytes */
	__u8 src_path[PPBPF_UNIX_PATH_LEN], dst_path[PPBPF_UNIX_PATH_LEN]; /* UNIX, as on the wire */
	const struct ppbpf_tlv *tlvs; /* v2: written in this order */
	unsigned int n_tlvs;
	unsigned int flags; /* PPBPF_BUILD_* */
};

/*
 * Write the header b describes to out. Returns its length, -EINVAL for an
 * impossible combination, -EMSGSIZE past 65535 bytes of v2 payload, or
 * -ENOSPC if cap is too small.
 */
PPBPF_API int ppbpf_build(const struct ppbpf_build *b, void *out, size_t cap);

/*
 * Write the value of an SSL TLV: client bits, verify result, then sub-TLVs.
 * Returns its length, -EMSGSIZE or -ENOSPC.
 */
PPBPF_API int ppbpf_build_ssl(__u8 client, __u32 verify, const struct ppbpf_tlv *subs, unsigned int n,
			      void *out, size_t cap);

/* Iterate a raw TLV list, such as the bytes ppbpf_get_tlvs() returns. */
PPBPF_API void ppbpf_tlv_iter_init_raw(struct ppbpf_tlv_iter *it, const void *tlvs, size_t len);

/* ---- the kernel side, per socket ------------------------------------------------- */

/*
 * What the kernel recorded for a connected socket: getsockopt(SOL_PPBPF,
 * PPBPF_INFO). Works for unprivileged processes. Returns 0, -ENODATA (the
 * socket is not tracked: its port has no policy, or its peer is not trusted),
 * -ENOPROTOOPT (ppbpf is not attached to the socket's cgroup), or -errno.
 * A socket that accept() returned before the kernel side set it up (a few
 * microseconds) is asked again for up to 1 s; -EAGAIN if still not ready.
 */
PPBPF_API int ppbpf_get(int fd, struct ppbpf_info *out);
/* The TLV bytes kept for the socket (at most PPBPF_TLV_MAX). Returns the count or -errno. */
PPBPF_API int ppbpf_get_tlvs(int fd, void *buf, size_t cap);
/*
 * Wait until the socket's header is judged (state other than PENDING), for
 * at most timeout_ms (-1: no limit; 0: one query). The kernel side queues
 * no byte of a pending header, so it sleeps in poll() until the socket is
 * readable (the verdict let bytes through) or the peer leaves, and asks the
 * kernel again at least every 50 ms, since some verdicts come without a
 * byte (the daemon's sweep makes a silent peer of an optional port plain);
 * when the timeout ends it asks once more. Returns:
 *   0            *out filled, state DONE, PLAIN or ERROR;
 *   -ETIMEDOUT   still pending at the timeout (*out: the last answer);
 *   -ECONNRESET  the peer closed (FIN or RST) before the header was judged,
 *                or the socket failed: no byte that could complete it will
 *                come (a health check's connect + close ends here at once);
 *   -ESTALE      more bytes are queued than the kernel side saw (it holds
 *                header segments back until the verdict, so this means the
 *                socket received data before it was tracked): the record
 *                cannot be trusted for this stream, and the port's policy
 *                (versions, size limit) is not in it; ppbpf_accept closes
 *                such a connection;
 *   or what ppbpf_get() returns. It never spins: every pass sleeps until a
 * byte, a FIN or the next query. It leaves the socket's options as they
 * are. Call it before reading from the socket.
 */
PPBPF_API int ppbpf_wait(int fd, int timeout_ms, struct ppbpf_info *out);
/*
 * The original source of the connection if the kernel recorded one (PROXY
 * command, TCP/UDP family), else the real peer. An IPv4 source is given as
 * ::ffff:a.b.c.d to an AF_INET6 socket. Returns 0 or -errno.
 */
PPBPF_API int ppbpf_getpeername(int fd, struct sockaddr *addr, socklen_t *len);

/*
 * Relay in_fd's original client to the next hop: out_fd's first bytes on the
 * wire become a PROXY header with in_fd's original source and destination,
 * written by the kernel (the sending side's sk_msg). in_fd is an inbound
 * socket whose header the kernel accepted (call it after ppbpf_accept or
 * ppbpf_wait); out_fd an outgoing TCP socket of the same cgroup, best
 * before connect() (its header then waits for the connection), or a
 * connected one whose --send header is not written yet (replaced). flags:
 * PPBPF_RELAY_V1 (a v1 header; else v2), and for v2 PPBPF_RELAY_TLVS (in_fd's
 * TLVs, not its CRC32C or NOOP, up to PPBPF_RELAY_TLV_MAX bytes),
 * PPBPF_RELAY_UNIQUE_ID (a random UNIQUE_ID unless a relayed TLV is one),
 * PPBPF_RELAY_CRC32C. No privileges and no map fds. Returns 0, or:
 *   -ENODATA      in_fd has no client to relay (untracked, plain, rejected,
 *                 a LOCAL header or a non-TCP family);
 *   -EAGAIN       in_fd's header is still pending;
 *   -EALREADY     out_fd has sent bytes already: its header can no longer
 *                 be first;
 *   -EISCONN      out_fd is connected and not a --send destination: call
 *                 it before connect();
 *   -ENOENT       the token is unknown (in_fd closed meanwhile);
 *   -ENOPROTOOPT  ppbpf is not attached to the socket's cgroup;
 *   -EINVAL       unknown flags, or out_fd is not a TCP socket;
 *   -ENOSPC, -ENOMEM  the kernel side has no room.
 * A Fast Open connect of out_fd afterwards is refused (EPERM): its first
 * bytes would leave in the SYN, before the header.
 */
PPBPF_API int ppbpf_relay(int in_fd, int out_fd, unsigned int flags);
/*
 * The two halves of ppbpf_relay, for a process that hands the client to
 * another: in_fd's token (the same while in_fd is open; it proves that the
 * caller held in_fd), and the header for it on out_fd. Same errors.
 */
PPBPF_API int ppbpf_relay_token(int in_fd, __u64 *token);
PPBPF_API int ppbpf_relay_with(int out_fd, __u64 token, unsigned int flags);

/* Fill a sockaddr (sockaddr_in, or sockaddr_in6 when want_af is AF_INET6) with a header's source. */
PPBPF_API int ppbpf_info_source(const struct ppbpf_info *info, int want_af, struct sockaddr *addr,
				socklen_t *len);

/* Default wait for a header in ppbpf_accept(): the spec's advice for a receiver. */
#define PPBPF_ACCEPT_TIMEOUT_MS 3000
/*
 * What ppbpf_accept() waits past its timeout for the kernel's verdict on a
 * peer that has sent nothing: the daemon's sweep gives it up to --sweep-ms
 * (default 100) after the port's --timeout.
 */
#define PPBPF_ACCEPT_GRACE_MS 250
/* Environment variable with the userspace fallback's trust list, where opts give none. */
#define PPBPF_FALLBACK_TRUST_ENV "PPBPF_FALLBACK_TRUST"

/*
 * Options of ppbpf_accept_opts(). Zero-initialise: a zero field keeps the
 * default. Fields are only ever added at the end, so sources stay
 * compatible; a binary built against an older ppbpf.h passes a shorter
 * struct than the library reads, and must be rebuilt.
 */
struct ppbpf_accept_opts {
	int timeout_ms;           /* wait for the header at most this long; 0 = default */
	struct ppbpf_info *info;  /* if set, receives the record of the returned connection */
	int no_fallback;          /* 1: never parse in userspace, whatever fallback_trust and
				   * PPBPF_FALLBACK_TRUST say */
	void *tlvs;               /* if set, receives the header's TLV bytes (as ppbpf_get_tlvs) */
	size_t tlvs_cap;          /* room at tlvs; the fallback keeps PPBPF_TLV_CAP_DEFAULT at most */
	size_t tlvs_len;          /* out: TLV bytes written */
	/*
	 * Where the kernel side is not attached, the userspace fallback honours
	 * a header only from a TCP peer in this list: addresses and CIDRs as for
	 * `ppbpf attach --trust`, separated by commas or spaces
	 * ("192.0.2.10,198.51.100.0/24,2001:db8::/32"). NULL: the
	 * PPBPF_FALLBACK_TRUST environment variable (ignored in setuid
	 * programs); if that is unset too, the fallback is off. "": trust
	 * nobody, whatever the environment says. A list that does not parse
	 * makes ppbpf_accept fail with EINVAL before it accepts anything.
	 */
	const char *fallback_trust;
	/*
	 * If set, receives the first bytes of the stream after the header,
	 * read in the same recv() that consumes the header (up to data_cap;
	 * fewer if fewer have come). The rest stays in the socket. Saves the
	 * application its first read: a request that came with its header is
	 * here when ppbpf_accept returns. data_len (out): bytes written, for
	 * every connection returned (0 if none had come, or untracked).
	 */
	void *data;
	size_t data_cap;
	size_t data_len; /* out */
};

/*
 * accept4() a connection and return it with its header consumed: exactly
 * header_len bytes as the kernel measured them, so the application's own
 * bytes stay in the socket untouched. *orig gets the original source (or
 * the real peer where the header has none, or the socket is untracked).
 *
 * Untracked connections (a port without policy, a peer the kernel side
 * does not trust) are returned untouched: nothing honoured, the stream as
 * it came, the real peer in *orig, info state NONE.
 *
 * Where the kernel side is not attached to the socket's cgroup (never
 * attached, detached, being re-attached), nothing can say whom to trust
 * unless the application does: by default the connection is returned
 * untouched, like an untrusted one. With a trust list (opts->fallback_trust
 * or PPBPF_FALLBACK_TRUST) and a peer in it, the same is done in userspace:
 * peek, parse with the same parser and the kernel's limit of 4096 bytes,
 * consume exactly the header, within the timeout; it applies no port policy
 * (required mode: no header is refused; every version is accepted).
 *
 * A connection whose header is invalid, not complete within the timeout,
 * cut short by the peer closing, or that the kernel side rejected (state
 * ERROR: untrusted peer on a rejecting port, refused version, full table),
 * is closed with an RST and the next one is accepted: it is never
 * returned. So is one the kernel has not judged when the timeout ends (a
 * peer that sent nothing gets PPBPF_ACCEPT_GRACE_MS more, for the verdict of
 * an optional port: plain, returned as such), and one with bytes the kernel
 * side did not see (ESTALE, see ppbpf_wait). On an optional port serving a
 * server-first protocol (SMTP, FTP, MySQL), the port's --timeout is how long
 * a silent client waits for its greeting: give ppbpf_accept a timeout at
 * least that long (the default, 3000 ms, matches the port's default).
 *
 * Non-blocking listeners: accept4() returning EAGAIN is passed through
 * (-1, errno EAGAIN). A connection that was accepted but whose header is
 * still incomplete is waited for (at most the timeout) before returning;
 * with TCP_DEFER_ACCEPT on the listener, or with ppbpf attached, the header
 * has normally arrived by then and there is no wait. Event-loop servers that
 * must never block can pass a small timeout_ms.
 *
 * Returns the new fd, or -1 with errno set (as accept4(); EINVAL for a
 * fallback trust list that does not parse).
 */
PPBPF_API int ppbpf_accept(int listen_fd, struct sockaddr *orig, socklen_t *len, int flags);
PPBPF_API int ppbpf_accept_opts(int listen_fd, struct sockaddr *orig, socklen_t *len, int flags,
				struct ppbpf_accept_opts *opts);

/* What ppbpf_accept() did, for servers that want to log it. */
struct ppbpf_accept_stats {
	unsigned long kernel;      /* connections answered by the kernel record */
	unsigned long userspace;   /* connections parsed in userspace (fallback) */
	unsigned long plain;       /* untracked, untrusted or header-less connections returned as they are */
	unsigned long rejected;    /* closed: invalid or refused header, rejected by the kernel side */
	unsigned long timed_out;   /* closed: header incomplete within the timeout, or the peer left first */
};
/* Counters of this process's ppbpf_accept() calls. */
PPBPF_API void ppbpf_accept_stats(struct ppbpf_accept_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* PPBPF_H */
