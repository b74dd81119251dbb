/* SPDX-License-Identifier: MIT */
/* Shared by the ppbpf subcommands: exit codes, the command table, helpers. */
#ifndef PPBPF_CLI_H
#define PPBPF_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
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
int cmd_stats(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_parse(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_selftest(int argc, char **argv);

/* Report a usage error for a subcommand and return EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Codes of options without a short letter start here, past every letter. */
#define CLI_LONG_ONLY 256
/* Most options one command has. */
#define CLI_OPTIONS_MAX 32

/*
 * One option of a command. Each command has one table of these: getopt's
 * short string and long options, and the options part of its --help, all
 * come from it.
 */
struct cli_option {
	const char *name;    /* the long name, without the dashes */
	int val;             /* its short letter, or CLI_LONG_ONLY + n for none */
	const char *metavar; /* its value, as the help names it ("P[,P...]"); NULL: it takes none */
	const char *help;    /* what it does; each '\n' starts a line under the first */
	unsigned int scope;  /* the command's own: where it may be given, which help section */
	unsigned int bit;    /* the command's own: the bit that records it was given */
};

/* Every command's last option. */
#define CLI_HELP_OPTION { .name = "help", .val = 'h', .help = "show this help" }

/* A command's command line: its table, its help, and what each option does. */
struct cli_command {
	const char *name;  /* as in "ppbpf NAME: ..." */
	const struct cli_option *opts;
	size_t n_opts;
	const char *usage; /* the help before the options: the usage line, what the command does */
	const char *more;  /* the help after them: exit status, examples */
	/* The options part of the help where it has sections; NULL: "Options:" and the whole table. */
	void (*options_help)(FILE *f);
	/* One option as given, with its value (NULL for none): 0, or EXIT_USAGE after saying why. */
	int (*apply)(void *ctx, const struct cli_option *o, const char *arg);
};

/*
 * The --help lines of the options whose scope has a bit of section (0: every
 * option), in table order, aligned for the whole table.
 */
void cli_print_options(FILE *f, const struct cli_option *opts, size_t n, unsigned int section);
/*
 * Parse argv (argv[0] is the command name). -h or --help anywhere wins, as
 * getopt reads the line (not as the value of another option, nor after
 * "--"): the help goes to stdout and the process exits 0, whatever else was
 * given. Otherwise each option goes to cmd->apply, in order. Returns 0, or
 * EXIT_USAGE after saying what is wrong: an unknown option or one that does
 * not take a value, a missing value, an argument that is not an option, or
 * what apply refused.
 */
int cli_parse(const struct cli_command *cmd, int argc, char **argv, void *ctx);

/* The number of entries of a table. */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

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

/* "pending", "done", "error", "plain" (and "none") for an enum ppbpf_state; "?" past them. */
const char *record_state_name(int state);
/* The enum ppbpf_state a --state filter names (pending, done, error, plain), or -1. */
int record_state_of_name(const char *name);

struct cidr;
/* The filters of list and trace: --port P (1-65535) and --src CIDR. 0, or EXIT_USAGE after saying why. */
int port_filter(const char *cmd, const char *arg, int *port);
int src_filter(const char *cmd, const char *arg, struct cidr *src);

#endif
