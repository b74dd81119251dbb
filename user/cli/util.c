// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ppbpf/ppbpf.h>
#include "cidr.h"
#include "cli.h"

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ppbpf %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'ppbpf %s --help'.\n", cmd);
	return EXIT_USAGE;
}

/*
 * getopt_long's arguments for a table of n options: longopts of n + 1
 * entries, and shortopts of 2 * n + 2 bytes. shortopts starts with ':', so
 * that getopt tells a missing value (':') from an unknown option ('?').
 */
static void getopt_args(const struct cli_option *opts, size_t n, struct option *longopts, char *shortopts)
{
	char *s = shortopts;

	*s++ = ':';
	for (size_t i = 0; i < n; i++) {
		/* an option takes a value exactly when its help names one */
		longopts[i] = (struct option){ opts[i].name, opts[i].metavar ? required_argument : no_argument, NULL,
					       opts[i].val };
		if (opts[i].val >= CLI_LONG_ONLY)
			continue;
		*s++ = (char)opts[i].val;
		if (opts[i].metavar)
			*s++ = ':';
	}
	*s = '\0';
	longopts[n] = (struct option){ 0 };
}

/* Labels wider than this get their help on the next line, so that one long label does not push every help right. */
#define HELP_LABEL_MAX 28

/* "  -p, --port P[,P...]": the left part of an option's help line. Returns its length. */
static int option_label(const struct cli_option *o, char *out, size_t cap)
{
	char letter[8] = "    ";

	if (o->val < CLI_LONG_ONLY)
		snprintf(letter, sizeof(letter), "-%c, ", o->val);
	return snprintf(out, cap, "  %s--%s%s%s", letter, o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
}

void cli_print_options(FILE *f, const struct cli_option *opts, size_t n, unsigned int section)
{
	char label[128];
	int column = 0;

	for (size_t i = 0; i < n; i++) {
		int len = option_label(&opts[i], label, sizeof(label));

		if (len <= HELP_LABEL_MAX && len + 2 > column)
			column = len + 2;
	}
	for (size_t i = 0; i < n; i++) {
		const char *line = opts[i].help;

		if (section && !(opts[i].scope & section))
			continue;
		if (option_label(&opts[i], label, sizeof(label)) > HELP_LABEL_MAX)
			fprintf(f, "%s\n%*s", label, column, "");
		else
			fprintf(f, "%-*s", column, label);
		for (;;) {
			const char *nl = strchr(line, '\n');

			if (!nl) {
				fprintf(f, "%s\n", line);
				break;
			}
			fprintf(f, "%.*s\n%*s", (int)(nl - line), line, column, "");
			line = nl + 1;
		}
	}
}

/* The entry of the option getopt_long returned as val, or NULL. */
static const struct cli_option *option_of(const struct cli_command *cmd, int val)
{
	for (size_t i = 0; i < cmd->n_opts; i++)
		if (cmd->opts[i].val == val)
			return &cmd->opts[i];
	return NULL;
}

/* An unknown or ambiguous long option, "--name" or "--name=value", by its name. EXIT_USAGE. */
static int refused_long_option(const struct cli_command *cmd, const char *arg)
{
	int len = (int)strcspn(arg, "=");
	int matches = 0;

	for (size_t i = 0; i < cmd->n_opts; i++)
		matches += !strncmp(cmd->opts[i].name, arg + 2, (size_t)len - 2);
	return usage_error(cmd->name, "%s option '%.*s'", matches > 1 ? "ambiguous" : "unknown", len, arg);
}

/*
 * Say what getopt_long refused (c is '?' or ':'), naming the option as it was
 * written. optopt is the option's val, or 0 for an unknown or ambiguous long
 * one. argv[optind - 1] is the argument only where getopt has moved past it:
 * after a long option, or a missing value (always the last argument), not
 * after a letter inside "-xv".
 */
static int refused_option(const struct cli_command *cmd, int c, char **argv)
{
	const struct cli_option *o = option_of(cmd, optopt);

	if (c == ':' && !strncmp(argv[optind - 1], "--", 2))
		return usage_error(cmd->name, "option '--%s' needs a value", o->name);
	if (c == ':')
		return usage_error(cmd->name, "option '-%c' needs a value", optopt);
	if (!optopt)
		return refused_long_option(cmd, argv[optind - 1]);
	/* a known option refused: only "--name=value" of one that takes none */
	if (o)
		return usage_error(cmd->name, "option '--%s' takes no value", o->name);
	return usage_error(cmd->name, "unknown option '-%c'", optopt);
}

static void print_help(const struct cli_command *cmd)
{
	fputs(cmd->usage, stdout);
	if (cmd->options_help) {
		cmd->options_help(stdout);
	} else {
		fputs("Options:\n", stdout);
		cli_print_options(stdout, cmd->opts, cmd->n_opts, 0);
	}
	fputs(cmd->more, stdout);
}

/* Is -h or --help among the options of argv, as getopt reads them? */
static bool help_asked(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	int c;

	optind = 0; /* GNU getopt: start over */
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
		if (c == 'h')
			return true;
	return false;
}

int cli_parse(const struct cli_command *cmd, int argc, char **argv, void *ctx)
{
	struct option longopts[CLI_OPTIONS_MAX + 1];
	char shortopts[2 * CLI_OPTIONS_MAX + 2];
	int c;

	if (cmd->n_opts > CLI_OPTIONS_MAX)
		abort(); /* a table too large for the arrays above: a bug, caught by any run of the command */
	getopt_args(cmd->opts, cmd->n_opts, longopts, shortopts);
	opterr = 0; /* our messages, not getopt's */
	/*
	 * A first pass only looks for the help, so that it wins over any other
	 * option, valid or not, before or after it.
	 */
	if (help_asked(argc, argv, shortopts, longopts)) {
		print_help(cmd);
		exit(EXIT_OK);
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		int rc;

		if (c == '?' || c == ':')
			return refused_option(cmd, c, argv);
		rc = cmd->apply(ctx, option_of(cmd, c), optarg);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return usage_error(cmd->name, "unexpected argument '%s'", argv[optind]);
	return 0;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long hex_decode(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = 0;

	for (const char *p = hex; *p;) {
		int hi, lo;

		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == ':') {
			p++;
			continue;
		}
		hi = hex_nibble(p[0]);
		lo = hi < 0 ? -1 : hex_nibble(p[1]);
		if (lo < 0 || n >= cap)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | lo);
		p += 2;
	}
	return (long)n;
}

int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *p = hex ? s + 2 : s;
	unsigned int base = hex ? 16 : 10;

	/*
	 * Digits only: no sign, no space, no empty "0x", no leading zero in
	 * decimal ("010" could be read as octal); hex only after 0x. Anything
	 * else is not a number, rather than the number strtoull would make of it.
	 */
	if (!*p || (!hex && p[0] == '0' && p[1]))
		return -1;
	for (; *p; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0'
			: hex && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
			: hex && *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;

		if (d < 0 || v > (~0ULL - (unsigned int)d) / base)
			return -1;
		v = v * base + (unsigned int)d;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

void format_endpoint(char *out, size_t cap, int af, const __u8 *addr, __u16 port)
{
	char txt[PPBPF_ADDRSTRLEN] = "?";

	ppbpf_format_ip(af, addr, txt, sizeof(txt));
	snprintf(out, cap, af == AF_INET6 ? "[%s]:%u" : "%s:%u", txt, port);
}

int stored_addr_af(int sock_af, const __u8 *addr)
{
	static const __u8 zero12[12];

	return sock_af == AF_INET || !memcmp(addr + 4, zero12, 12) ? AF_INET : AF_INET6;
}

static const char *const record_states[] = { "none", "pending", "done", "error", "plain" };

const char *record_state_name(int state)
{
	return state >= 0 && state < (int)ARRAY_SIZE(record_states) ? record_states[state] : "?";
}

int record_state_of_name(const char *name)
{
	for (int s = PPBPF_STATE_PENDING; s < (int)ARRAY_SIZE(record_states); s++)
		if (!strcmp(name, record_states[s]))
			return s;
	return -1;
}

int port_filter(const char *cmd, const char *arg, int *port)
{
	char *end;

	*port = (int)strtol(arg, &end, 10);
	if (*end || end == arg || *port < 1 || *port > 65535)
		return usage_error(cmd, "--port %s: not a port (1-65535)", arg);
	return 0;
}

int src_filter(const char *cmd, const char *arg, struct cidr *src)
{
	const char *why = NULL;

	if (cidr_parse(arg, src, &why))
		return usage_error(cmd, "--src %s: %s", arg, why ? why : "not a CIDR");
	return 0;
}
