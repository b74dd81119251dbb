/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* How the record is published to readers on other CPUs: the order, and the barriers that keep it. */
#ifndef PPBPF_LIB_ORDERING_H
#define PPBPF_LIB_ORDERING_H

/*
 * The record is written in softirq while getsockopt may copy it on another
 * CPU. Writers publish in a fixed order and readers read in the reverse
 * order, so a reader that sees the last store also sees the ones before it
 * (stores and loads keep program order on x86; the barriers stop clang).
 *   writer: need, then have                       (still pending)
 *           result fields, then state, then have  (a verdict)
 *   reader: have, need, state, then the fields
 */
#define barrier() asm volatile("" ::: "memory")
#define READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

#endif /* PPBPF_LIB_ORDERING_H */
