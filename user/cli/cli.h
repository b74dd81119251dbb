/* SPDX-License-Identifier: MIT */
/* Shared by the ppbpf subcommands: exit codes, the command table, helpers. */
#ifndef PPBPF_CLI_H
#define PPBPF_CLI_H

#include <stddef.h>
#include <linux/types.h>

/* Exit codes, a contract for scripts. */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_INCOMPLETE 3 /* `parse`: the input is a valid but incomplete header */

/* A subcommand: argv[0] is its name. Returns an exit code. */
struct cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_parse(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* Report a usage error for a subcommand and return EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hex text (whitespace and ':' allowed between bytes) to bytes. Returns the count or -1. */
long hex_decode(const char *hex, unsigned char *out, size_t cap);

/* "addr:port" of an address (network order), with brackets around IPv6. */
void format_endpoint(char *out, size_t cap, int af, const __u8 *addr, __u16 port);
/*
 * The family of a socket's address as the kernel side stores it: IPv4 (also
 * a v4-mapped peer of a dual-stack socket) in the first 4 bytes, the rest zero.
 */
int stored_addr_af(int sock_af, const __u8 *addr);

/* Unsigned decimal (no leading zero) or 0x hex, digits only, with an upper bound. Returns 0 or -1. */
int parse_uint(const char *s, unsigned long long max, unsigned long long *out);

#endif
