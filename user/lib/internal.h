/* SPDX-License-Identifier: MIT */
/* Shared inside libppbpf; not part of the API. */
#ifndef PPBPF_LIB_INTERNAL_H
#define PPBPF_LIB_INTERNAL_H

/* CLOCK_MONOTONIC in milliseconds. */
long ppbpf__now_ms(void);
/* Sleep until at least `bytes` are queued on fd, the peer hangs up, or deadline (ms, -1 none). 0 or -errno. */
int ppbpf__wait_bytes(int fd, unsigned int bytes, long deadline);
/* AF_INET, AF_INET6, ... of a socket. */
int ppbpf__sock_af(int fd);

#endif
