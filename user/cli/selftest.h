/* SPDX-License-Identifier: MIT */
/* The parser self-test run before every attach. */
#ifndef PPBPF_CLI_SELFTEST_H
#define PPBPF_CLI_SELFTEST_H

struct ppbpf_bpf;

/*
 * Parse a set of headers, and every prefix of each, with the loaded kernel
 * parser and with userspace's; *n_inputs gets how many. 0 if all agree;
 * -EPROTO (said on stderr) if one differs; -errno if it could not run.
 */
int selftest_parser(struct ppbpf_bpf *skel, int *n_inputs);

#endif
