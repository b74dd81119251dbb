/* SPDX-License-Identifier: MIT */
/* What the running kernel offers ppbpf, found before anything is loaded. */
#ifndef PPBPF_CLI_FEATURES_H
#define PPBPF_CLI_FEATURES_H

#include <stdbool.h>
#include <stdio.h>

/* The oldest kernel ppbpf is tested on and supports. */
#define PPBPF_MIN_KERNEL "6.1"

/* Most features one kernel can lack that a report keeps. */
#define FEATURES_MAX 24

/* One thing ppbpf uses, the kernel release that brought it, and what ppbpf does without it. */
struct feature {
	const char *name;  /* as printed: "the bpf_loop helper" */
	const char *key;   /* short and stable, for JSON: "bpf_loop" */
	const char *since; /* "5.17" */
	const char *without; /* NULL: required; else what ppbpf does instead */
	const char *hint;  /* required, and a matter of the host's set-up, not of its release: what to do */
};

/* What the running kernel lacks. */
struct kernel_report {
	char release[65];                        /* uname -r */
	const struct feature *lacks[FEATURES_MAX]; /* required and optional */
	int n_lacks;
	bool required_missing;                   /* some required feature is absent: nothing can load */
	bool sock_destroy;                       /* the bpf_sock_destroy kfunc (6.5): the sweep resets itself */
};

/* Probe the kernel. Never fails: what cannot be probed counts as absent. */
void features_probe(struct kernel_report *r);
/*
 * One line per feature the kernel lacks, each "<prefix>: this kernel (R)
 * lacks X (Linux V): what happens". Returns false if a required one is
 * missing (then ppbpf cannot load).
 */
bool features_report(const struct kernel_report *r, const char *prefix, FILE *out);

#endif
