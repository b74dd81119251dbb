/* SPDX-License-Identifier: MIT */
/* The fuzz targets' invariant check: say which one failed, then abort for libFuzzer to report it. */
#ifndef PPBPF_FUZZ_CHECK_H
#define PPBPF_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);  \
			abort();                                                               \
		}                                                                              \
	} while (0)

#endif
