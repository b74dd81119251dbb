/* SPDX-License-Identifier: MIT */
/*
 * The thin layer that lets parse.h compile unchanged for BPF and for the host.
 *
 * Everything target-specific the parser needs is here: integer types, forced
 * inlining, how an index into the input is formed, and how a bounded loop
 * over a step function runs. Nothing else in parse.h tests __bpf__ except
 * where a faster host-only primitive is chosen.
 *
 * BPF includers must include vmlinux.h (or linux/types.h) and
 * <bpf/bpf_helpers.h> first, and hand the parser a buffer of at least
 * PPBPF_BPF_BUF_SIZE + PPBPF_BPF_BUF_SLACK bytes (a map value).
 */
#ifndef PPBPF_TARGET_H
#define PPBPF_TARGET_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define PPBPF_INLINE static inline __attribute__((always_inline))

/* Input bytes the BPF parser can see: a power of two, so it can be a mask. */
#ifndef PPBPF_BPF_BUF_SIZE
#define PPBPF_BPF_BUF_SIZE 4096
#endif
/* Extra bytes after the buffer so a fixed-size read at a masked index stays inside it. */
#define PPBPF_BPF_BUF_SLACK 16
/* The input in BPF: a map value of known size, so subprograms may index it. */
struct ppbpf_bpf_buf {
	__u8 data[PPBPF_BPF_BUF_SIZE + PPBPF_BPF_BUF_SLACK];
};

#ifdef __bpf__
typedef struct ppbpf_bpf_buf ppbpf_buf_t;
/*
 * The verifier cannot relate an index to a length held in another register,
 * so every index is masked to the buffer size. At run time the mask changes
 * nothing: each index was already checked against the input length.
 */
#define PPBPF_IDX(i) ((__u32)(i) & (PPBPF_BPF_BUF_SIZE - 1))
/* Address of byte i of the input. */
#define PPBPF_PTR(buf, i) (&(buf)->data[PPBPF_IDX(i)])
/*
 * A global function: the verifier checks it once, with unknown arguments,
 * instead of once per path that reaches it (which explodes on text fields).
 */
#define PPBPF_SUBPROG __attribute__((noinline))
/*
 * A global function's pointer arguments may be NULL to the verifier, and
 * before Linux 6.8 no annotation says otherwise (arg:nonnull is ignored):
 * each one is tested once at the top of the function instead.
 */
#define PPBPF_ARGS_NONNULL(cond, rc)  \
	do {                          \
		if (!(cond))          \
			return (rc);  \
	} while (0)
/*
 * A zero the verifier cannot know. Before Linux 6.7 it checks a bpf_loop
 * callback as if it ran once, from the state at the call, and removes the
 * branches that one run cannot take as dead code: state a later iteration
 * changes must start from a value it cannot see through, such as this .bss
 * word (written by nobody, so always 0).
 */
static __u32 ppbpf_opaque_zero_;
#define PPBPF_OPAQUE_ZERO (*(volatile __u32 *)&ppbpf_opaque_zero_)
/* A callback for PPBPF_LOOP: bpf_loop needs a real function to point at. */
#define PPBPF_CALLBACK static
/* Up to n calls of fn(i, ctx), stopping when it returns non-zero. */
#define PPBPF_LOOP(n, fn, ctx) bpf_loop((n), (fn), (ctx), 0)
#else
/* The input on the host: any byte array. */
typedef __u8 ppbpf_buf_t;
#define PPBPF_IDX(i) (i)
#define PPBPF_PTR(buf, i) (&(buf)[i])
#define PPBPF_SUBPROG PPBPF_INLINE
#define PPBPF_ARGS_NONNULL(cond, rc) ((void)0)
#define PPBPF_OPAQUE_ZERO 0u
#define PPBPF_CALLBACK PPBPF_INLINE
#define PPBPF_LOOP(n, fn, ctx)                                   \
	do {                                                     \
		for (__u32 ppbpf_i_ = 0; ppbpf_i_ < (n); ppbpf_i_++) \
			if ((fn)(ppbpf_i_, (ctx)))               \
				break;                           \
	} while (0)
#endif

/* Byte i of the input. */
#define PPBPF_AT(buf, i) (*PPBPF_PTR(buf, i))

#endif /* PPBPF_TARGET_H */
