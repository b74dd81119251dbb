/* SPDX-License-Identifier: MIT */
/*
 * A small seeded PRNG (splitmix64) for the randomized unit tests: the same
 * seed gives the same sequence on every machine, so a failure reproduces.
 */
#ifndef PPBPF_TEST_PRNG_H
#define PPBPF_TEST_PRNG_H

#include <stdint.h>
#include <stddef.h>

struct prng {
	uint64_t s;
};

static inline uint64_t prng_next(struct prng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. The bias for n << 2^64 is negligible here. */
static inline uint32_t prng_below(struct prng *r, uint32_t n)
{
	return (uint32_t)(prng_next(r) % n);
}

static inline void prng_fill(struct prng *r, void *dst, size_t n)
{
	unsigned char *p = dst;

	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)prng_next(r);
}

#endif
