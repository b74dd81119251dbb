/* SPDX-License-Identifier: MIT */
/* Shared inside libppbpf; not part of the API. */
#ifndef PPBPF_LIB_INTERNAL_H
#define PPBPF_LIB_INTERNAL_H

/* CLOCK_MONOTONIC in milliseconds. */
long ppbpf__now_ms(void);
/*
 * Sleep until at least `bytes` are queued on fd (0), the peer has closed or the
 * socket failed with fewer queued (-ECONNRESET), or deadline (ms, -1: none) passes
 * (-ETIMEDOUT). Never returns 0 with fewer bytes queued. Keeps the socket's SO_RCVLOWAT.
 */
int ppbpf__wait_bytes(int fd, unsigned int bytes, long deadline);
/* ppbpf_wait from an answer already in *out (no first query). */
int ppbpf__wait_pending(int fd, int timeout_ms, struct ppbpf_info *out);
/* AF_INET, AF_INET6, ... of a socket. */
int ppbpf__sock_af(int fd);

#endif
