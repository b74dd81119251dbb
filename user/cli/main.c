// SPDX-License-Identifier: MIT
/* ppbpf: the command-line entry point and subcommand table. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

#ifndef PPBPF_VERSION
#define PPBPF_VERSION "0.1.0"
#endif

static const struct cli_cmd commands[] = {
	{ "attach", cmd_attach, "load and attach to a cgroup; set the policy of ports" },
	{ "run", cmd_run, "the daemon: attach, log rejections, reset them, enforce timeouts" },
	{ "detach", cmd_detach, "detach and remove every program, link, pin and map" },
	{ "status", cmd_status, "what is attached where, the policy, the counters" },
	{ "list", cmd_list, "tracked connections and their original endpoints" },
	{ "stats", cmd_stats, "the counters: a table, JSON, or Prometheus's text format" },
	{ "trace", cmd_trace, "live events: headers parsed, rejected, closed and sent" },
	{ "parse", cmd_parse, "parse a PROXY header from stdin or hex; print JSON" },
	{ "build", cmd_build, "build a PROXY header from fields; print hex or raw" },
	{ "selftest", cmd_selftest, "check that transparent mode keeps streams intact on this kernel" },
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ppbpf COMMAND [OPTIONS]\n"
		"\n"
		"ppbpf handles the PROXY protocol (HAProxy's v1 and v2) for Linux services.\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
		"\n"
		"Examples:\n"
		"  ppbpf attach --cgroup system.slice/app.service --port 8080 --trust 10.0.0.0/8\n"
		"  ppbpf list\n"
		"  printf 'PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\\r\\n' | ppbpf parse\n"
		"  ppbpf build --src-addr 2001:db8::1 --dst-addr 2001:db8::2 --src-port 1 \\\n"
		"      --dst-port 2 --crc32c --raw | ppbpf parse\n"
		"\n"
		"Run 'ppbpf COMMAND --help' for a command's options and examples.\n"
		"Options: -h, --help  this text;  --version  the program version.\n"
		"Exit status: 0 ok, 1 failure, 2 usage error (parse: 3 incomplete).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("ppbpf %s\n", PPBPF_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "ppbpf: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
