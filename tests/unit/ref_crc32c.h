/* SPDX-License-Identifier: MIT */
/* The textbook bit-at-a-time CRC32C, to judge the library's table and SSE4.2 versions. */
#ifndef PPBPF_TEST_REF_CRC32C_H
#define PPBPF_TEST_REF_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C (reflected polynomial 0x82F63B78) of p[0..n). */
static inline uint32_t ref_crc32c(const unsigned char *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

#endif
