/* SPDX-License-Identifier: MIT */
/*
 * Parser test vectors, shared by the unit tests (userspace parser) and by the
 * in-kernel check (the same parser running as BPF).
 */
#ifndef PPBPF_TEST_VECTORS_H
#define PPBPF_TEST_VECTORS_H

#include <stddef.h>
#include <ppbpf/ppbpf.h>

/* Largest input a vector decodes to. */
#define VECTOR_MAX 2048

struct vector {
	const char *name;
	const char *text; /* input as a C string (v1), or NULL */
	const char *hex;  /* input as hex; "{N*HH}" repeats byte HH N times */
	int rc;           /* expected: header length (> 0) or a PPBPF_E_* status */
	__u32 need;       /* for PPBPF_E_INCOMPLETE */
	__u32 max;        /* header size limit; 0 for none */
	/* Expected fields when rc > 0: */
	int command;
	int family;
	const char *src, *dst; /* canonical text, or NULL when the family has none */
	int sport, dport;
	__u32 tlv_len;
};

extern const struct vector vectors[];
extern const size_t n_vectors;

/* The vector's input bytes into out; returns the length (aborts on a malformed vector). */
size_t vector_bytes(const struct vector *v, __u8 *out, size_t cap);
/* The limit to parse a vector with. */
__u32 vector_max(const struct vector *v);

#endif
