/* SPDX-License-Identifier: MIT */
/* Self-tests: the parser's, run before every attach; transparent mode's (`ppbpf selftest`). */
#ifndef PPBPF_CLI_SELFTEST_H
#define PPBPF_CLI_SELFTEST_H

#include <stdbool.h>

struct ppbpf_bpf;

/*
 * Parse a set of headers, and every prefix of each, with the loaded kernel
 * parser and with userspace's; *n_inputs gets how many. 0 if all agree;
 * -EPROTO (said on stderr) if one differs; -errno if it could not run.
 */
int selftest_parser(struct ppbpf_bpf *skel, int *n_inputs);

/*
 * Transparent mode's integrity run (cmd_selftest.c): mib MiB over conns
 * connections, in a private network namespace and cgroup, with loss and
 * duplication. 0 if every stream arrived intact (remembered for this
 * kernel), else -1 after saying why.
 */
int selftest_run(unsigned int mib, unsigned int conns, bool verbose);
/* Has that run passed on this kernel release before? */
bool selftest_passed_here(void);

#endif
