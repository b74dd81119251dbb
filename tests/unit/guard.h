/* SPDX-License-Identifier: MIT */
/*
 * Test inputs placed so they end exactly where an inaccessible page begins:
 * a read of even one byte past the input faults.
 */
#ifndef PPBPF_TEST_GUARD_H
#define PPBPF_TEST_GUARD_H

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Largest input guard_put() takes. */
#define GUARD_MAX (128 * 1024)

/* A copy of src[0..n) whose last byte is the last accessible byte of memory. */
static inline unsigned char *guard_put(const void *src, size_t n)
{
	static unsigned char *area;
	static size_t page;

	if (!area) {
		page = (size_t)sysconf(_SC_PAGESIZE);
		area = mmap(NULL, GUARD_MAX + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (area == MAP_FAILED || mprotect(area + GUARD_MAX, page, PROT_NONE))
			abort();
	}
	if (n > GUARD_MAX)
		abort();
	memcpy(area + GUARD_MAX - n, src, n);
	return area + GUARD_MAX - n;
}

#endif
