/* SPDX-License-Identifier: MIT */
/*
 * Transparent mode's side at tc: the programs on the interfaces of this
 * network namespace, and the flows they shift (reset before the programs
 * go: a flow left half-shifted would be corrupted).
 */
#ifndef PPBPF_CLI_TC_H
#define PPBPF_CLI_TC_H

#include <stdbool.h>
#include <stdio.h>

/* Pin names of the two tc programs in the pin folder. */
#define PPBPF_TC_INGRESS_PIN "tc_ingress"
#define PPBPF_TC_EGRESS_PIN "tc_egress"
/* Pin name of the flow table's sweep (a syscall program). */
#define PPBPF_FLOW_SWEEP_PIN "flow_sweep"
/* Most interfaces --dev names. */
#define TC_DEVS_MAX 64

/*
 * Attach the pinned tc programs of pin_dir to the interfaces of this network
 * namespace: those of devs (a comma list), or, with devs NULL or empty,
 * every Ethernet interface and the loopback: with tcx where the kernel has
 * it (Linux 6.6; links pinned in pin_dir), else as clsact filters. Loopback
 * gets ingress only (it
 * sees both directions there); the others ingress and egress. An interface
 * that has them already keeps them (the filter is replaced in place). With
 * quiet, an interface that is no longer there is no error (`ppbpf run`'s
 * rescans). Returns how many interfaces were attached, or -errno after
 * saying why.
 */
int tc_attach(const char *pin_dir, const char *devs, bool quiet);
/*
 * Remove transparent mode from the interfaces: pin_dir's tcx links, and
 * ppbpf's clsact filters on every interface of this network namespace.
 * Returns how many hooks lost it.
 */
int tc_detach(const char *pin_dir);
/*
 * How many hooks have pin_dir's programs: tcx links and interfaces with its
 * clsact filters, named into out ("lo (tcx), eth0 (clsact)").
 */
int tc_attached(const char *pin_dir, char *out, size_t cap);
/*
 * Reset every open transparent flow of pin_dir's flow table (of `port`
 * only, if not 0): the server's socket is aborted (SOCK_DESTROY), which
 * sends the client a reset. Returns how many could not be reset (0: all
 * were), or -errno; says why on stderr for each one.
 */
int flows_reset(const char *pin_dir, unsigned int port);
/*
 * The sweep of the flow table, in the kernel (the pinned flow_sweep program,
 * run once): flows closed for longer than TIME_WAIT, and handshakes that
 * never completed, go. Returns how many were removed, or -errno.
 */
int flows_sweep(const char *pin_dir);

#endif
