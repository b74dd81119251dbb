/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli, RFC 4960 appendix B), freestanding: used by the parser
 * in BPF and in userspace, and by the userspace builder.
 *
 * The byte-wise table is computed by the preprocessor, so the same header
 * serves both targets with no generated file. On x86-64 userspace uses the
 * SSE4.2 CRC32 instruction when the CPU has it.
 */
#ifndef PPBPF_CRC32C_H
#define PPBPF_CRC32C_H

#include "target.h"

/* Reflected Castagnoli polynomial. */
#define PPBPF_CRC32C_POLY 0x82F63B78u

#define PPBPF_CRC_B1(c) (((c) & 1) ? (((c) >> 1) ^ PPBPF_CRC32C_POLY) : ((c) >> 1))
#define PPBPF_CRC_B2(c) PPBPF_CRC_B1(PPBPF_CRC_B1(c))
#define PPBPF_CRC_B8(c) PPBPF_CRC_B2(PPBPF_CRC_B2(PPBPF_CRC_B2(PPBPF_CRC_B2(c))))
#define PPBPF_CRC_T1(n) PPBPF_CRC_B8((__u32)(n))
#define PPBPF_CRC_T4(n) PPBPF_CRC_T1(n), PPBPF_CRC_T1((n) + 1), PPBPF_CRC_T1((n) + 2), PPBPF_CRC_T1((n) + 3)
#define PPBPF_CRC_T16(n) PPBPF_CRC_T4(n), PPBPF_CRC_T4((n) + 4), PPBPF_CRC_T4((n) + 8), PPBPF_CRC_T4((n) + 12)
#define PPBPF_CRC_T64(n) PPBPF_CRC_T16(n), PPBPF_CRC_T16((n) + 16), PPBPF_CRC_T16((n) + 32), PPBPF_CRC_T16((n) + 48)

/* crc32c_table[b] = CRC of the single byte b (no pre/post inversion). */
static const __u32 ppbpf_crc32c_table[256] = {
	PPBPF_CRC_T64(0), PPBPF_CRC_T64(64), PPBPF_CRC_T64(128), PPBPF_CRC_T64(192),
};

/* One byte into a running (inverted) CRC. */
PPBPF_INLINE __u32 ppbpf_crc32c_byte(__u32 crc, __u8 b)
{
	return ppbpf_crc32c_table[(crc ^ b) & 0xff] ^ (crc >> 8);
}

#ifndef __bpf__
/* Portable: bytes p[0..n) into a running (inverted) CRC. */
static inline __u32 ppbpf_crc32c_sw(__u32 crc, const __u8 *p, __u32 n)
{
	for (__u32 i = 0; i < n; i++)
		crc = ppbpf_crc32c_byte(crc, p[i]);
	return crc;
}

#if defined(__x86_64__)
/* SSE4.2 CRC32 computes exactly CRC32C; 8 bytes per instruction. */
__attribute__((target("sse4.2"))) static inline __u32
ppbpf_crc32c_hw(__u32 crc, const __u8 *p, __u32 n)
{
	__u64 c = crc;

	for (; n >= 8; n -= 8, p += 8) {
		__u64 v;

		__builtin_memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (__u32)c;
	for (; n; n--, p++)
		crc = __builtin_ia32_crc32qi(crc, *p);
	return crc;
}

static inline int ppbpf_crc32c_have_hw(void)
{
	return __builtin_cpu_supports("sse4.2");
}
#else
static inline __u32 ppbpf_crc32c_hw(__u32 crc, const __u8 *p, __u32 n)
{
	return ppbpf_crc32c_sw(crc, p, n);
}

static inline int ppbpf_crc32c_have_hw(void)
{
	return 0;
}
#endif

/* Bytes p[0..n) into a running (inverted) CRC, fastest available way. */
static inline __u32 ppbpf_crc32c_update(__u32 crc, const __u8 *p, __u32 n)
{
	return ppbpf_crc32c_have_hw() ? ppbpf_crc32c_hw(crc, p, n) : ppbpf_crc32c_sw(crc, p, n);
}

/* CRC32C of p[0..n), as carried in the PP2_TYPE_CRC32C TLV. */
static inline __u32 ppbpf_crc32c(const void *p, __u32 n)
{
	return ~ppbpf_crc32c_update(~0u, (const __u8 *)p, n);
}
#endif /* !__bpf__ */

#endif /* PPBPF_CRC32C_H */
