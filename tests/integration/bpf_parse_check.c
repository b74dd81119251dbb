// SPDX-License-Identifier: MIT
/*
 * Loads ppbpf's own parser program (ppbpf_selftest in bpf/ppbpf.bpf.c, the
 * parser ingress runs, as this kernel's verifier leaves it) through
 * the verifier, then runs it with BPF_PROG_TEST_RUN on every parser vector,
 * every prefix of them and on mutated inputs, and requires the kernel's
 * answer to equal the userspace parser's, byte for byte.
 *
 * Exit: 0 pass, 1 fail, 77 skipped (no root / no BPF).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vectors.h" /* before the skeleton: it names the parser's structs */
#include "ppbpf.skel.h"

#define EXIT_SKIP 77
/* Mutated inputs per run. */
#define N_MUTATIONS 20000
/* Largest input the BPF buffer holds. */
#define BPF_INPUT_MAX 4096

struct checker {
	struct ppbpf_bpf *skel;
	int prog_fd;
	long runs;
	long mismatches;
};

/* Parse buf in the kernel; returns the kernel's rc and fills *h, or aborts the check. */
static int kernel_parse(struct checker *c, const __u8 *buf, size_t n, __u32 max, struct ppbpf_hdr *h)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	int err;

	memcpy(c->skel->bss->selftest_in.data, buf, n);
	c->skel->bss->selftest_len = (__u32)n;
	c->skel->bss->selftest_max = max;
	c->skel->bss->selftest_rc = 0x7fffffff;
	err = bpf_prog_test_run_opts(c->prog_fd, &opts);
	if (err) {
		fprintf(stderr, "failed to run the BPF parser: %s\n", strerror(-err));
		exit(1);
	}
	memcpy(h, &c->skel->bss->selftest_hdr, sizeof(*h));
	c->runs++;
	return c->skel->bss->selftest_rc;
}

/* One input through both parsers; counts and reports a difference. */
static void compare(struct checker *c, const char *what, const __u8 *buf, size_t n, __u32 max)
{
	struct ppbpf_hdr hu, hk;
	int ru, rk;

	/* The BPF parser's limit is its buffer; give userspace the same one. */
	if (max > BPF_INPUT_MAX)
		max = BPF_INPUT_MAX;
	ru = ppbpf_parse_max(buf, (__u32)n, max, &hu);
	rk = kernel_parse(c, buf, n, max, &hk);

	if (ru == rk && !memcmp(&hu, &hk, sizeof(hu)))
		return;
	if (c->mismatches++ < 20)
		fprintf(stderr, "MISMATCH %s (%zu bytes): userspace %d (%s), kernel %d (%s)%s\n", what, n, ru,
			ppbpf_errname(ru), rk, ppbpf_errname(rk), ru == rk ? ", headers differ" : "");
}

/* A vector's input with a few random edits: flips, truncation, junk. */
static size_t mutate(const __u8 *src, size_t n, __u8 *out, unsigned int *seed)
{
	size_t len = n;

	memcpy(out, src, n);
	for (int k = rand_r(seed) % 4; k >= 0; k--) {
		size_t at = len ? (size_t)rand_r(seed) % len : 0;

		switch (rand_r(seed) % 4) {
		case 0:
			if (len)
				out[at] ^= (__u8)(1 << (rand_r(seed) % 8));
			break;
		case 1:
			if (len)
				out[at] = (__u8)rand_r(seed);
			break;
		case 2:
			len = at;
			break;
		default:
			if (len < BPF_INPUT_MAX)
				out[len++] = (__u8)rand_r(seed);
		}
	}
	return len;
}

static int run_checks(struct checker *c)
{
	static __u8 buf[VECTOR_MAX], mut[BPF_INPUT_MAX];
	unsigned int seed = 20261127;

	for (size_t i = 0; i < n_vectors; i++) {
		const struct vector *v = &vectors[i];
		size_t n = vector_bytes(v, buf, sizeof(buf));

		for (size_t k = 0; k <= n; k++)
			compare(c, v->name, buf, k, vector_max(v));
	}
	for (int m = 0; m < N_MUTATIONS; m++) {
		const struct vector *v = &vectors[(size_t)rand_r(&seed) % n_vectors];
		size_t n = vector_bytes(v, buf, sizeof(buf));

		n = mutate(buf, n, mut, &seed);
		compare(c, v->name, mut, n, rand_r(&seed) % 8 ? PPBPF_V2_MAX_LEN : (__u32)(rand_r(&seed) % 300));
	}
	printf("bpf parse check: %ld inputs compared, %ld mismatches\n", c->runs, c->mismatches);
	if (c->runs < N_MUTATIONS) { /* the vectors and their prefixes come on top */
		fprintf(stderr, "FAIL: only %ld inputs compared\n", c->runs);
		return 1;
	}
	return c->mismatches ? 1 : 0;
}

static void print_verifier_cost(int prog_fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (!bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		printf("bpf parse check: parser loaded, %u instructions, verifier processed %u\n",
		       info.xlated_prog_len / 8, info.verified_insns);
}

/* ppbpf's object with only its parser program loaded (the others need no checking here). */
static struct ppbpf_bpf *open_parser(void)
{
	struct ppbpf_bpf *skel = ppbpf_bpf__open();
	struct bpf_program *prog;
	int err;

	if (!skel)
		return NULL;
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, prog == skel->progs.ppbpf_selftest);
	err = ppbpf_bpf__load(skel);
	if (err) {
		ppbpf_bpf__destroy(skel);
		errno = -err;
		return NULL;
	}
	return skel;
}

int main(void)
{
	struct checker c = {};
	int err;

	c.skel = open_parser();
	if (!c.skel) {
		err = -errno;
		if (geteuid() != 0 || err == -EPERM) {
			printf("SKIPPED: bpf parse check needs root and BPF (%s)\n", strerror(-err));
			return EXIT_SKIP;
		}
		fprintf(stderr, "failed to load the BPF parser: %s\n", strerror(-err));
		return 1;
	}
	c.prog_fd = bpf_program__fd(c.skel->progs.ppbpf_selftest);
	print_verifier_cost(c.prog_fd);
	err = run_checks(&c);
	ppbpf_bpf__destroy(c.skel);
	return err;
}
