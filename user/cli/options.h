/* SPDX-License-Identifier: MIT */
/* The policy options shared by `ppbpf attach` and `ppbpf run`, and applying them. */
#ifndef PPBPF_CLI_OPTIONS_H
#define PPBPF_CLI_OPTIONS_H

#include <stdbool.h>
#include <ppbpf/abi.h>
#include "loader.h"
#include "policy.h"

/* The --help lines of the policy options, shared by attach and run. */
#define POLICY_OPTIONS_HELP \
	"Policy of the ports (changed live by running again):\n" \
	"  -p, --port P[,P...]      local ports that expect a PROXY header\n" \
	"  -t, --trust CIDR[,...]   sources whose headers are honoured on these ports;\n" \
	"                           default: any source (a warning is printed)\n" \
	"      --untrusted plain|reject\n" \
	"                           what other sources get: plain (default) leaves the\n" \
	"                           connection untouched and honours nothing; reject resets it\n" \
	"      --mode required|optional\n" \
	"                           required (default): a trusted peer without a valid\n" \
	"                           header is reset; optional: no header is a plain\n" \
	"                           connection (an invalid one is still reset)\n" \
	"  -o, --optional           the same as --mode optional\n" \
	"      --versions 1|2|1,2   header versions accepted (default 1,2); others are reset\n" \
	"      --timeout MS         reset a header still incomplete this long after the\n" \
	"                           handshake (default 3000; 0: never). Needs `ppbpf run`\n" \
	"  -m, --max-header BYTES   largest header accepted (default and limit 4096; v1 is\n" \
	"                           always at most 107); a longer one is reset\n" \
	"  -r, --rewrite-peer       accept() and getpeername() return the original source\n" \
	"Whole attachment:\n" \
	"      --tlv-cap BYTES      TLV bytes kept per socket (default 512, at most 1024)\n" \
	"  -c, --cgroup PATH        cgroup to attach to; relative paths are under the cgroup2\n" \
	"                           mount; default: its root (every service on the host)\n" \
	"  -d, --pin-dir DIR        bpffs folder for links and maps (default " PPBPF_PIN_DIR ")\n" \
	"      --table-size N       connection table capacity (default 65536; set when first\n" \
	"                           attached). When full, new tracked connections are reset\n" \
	"  -v, --verbose            print libbpf's messages and verifier logs\n" \
	"  -h, --help               show this help\n"

/* Most ports and trusted blocks one policy group takes. */
#define MAX_PORTS 64
#define MAX_TRUST 256
/* Most policy groups (config lines with a port) `ppbpf run` takes. */
#define MAX_GROUPS 32

/* Ports that share one policy and one list of trusted sources. */
struct port_group {
	__u16 ports[MAX_PORTS];
	int n_ports;
	struct cidr trust[MAX_TRUST];
	int n_trust;
	struct ppbpf_port_policy pol;
};

/* Everything `attach` and `run` are told. */
struct attach_args {
	struct port_group groups[MAX_GROUPS];
	int n_groups;           /* groups[n_groups - 1] takes the port options being parsed */
	long tlv_cap;           /* -1: unchanged */
	const char *cgroup, *pin_dir;
	unsigned long long table_size;
	bool verbose;
	/* `run` only */
	const char *config;     /* config file, re-read on SIGHUP */
	bool keep;              /* leave the programs pinned on exit */
	unsigned int sweep_ms;  /* how often the sweep runs (timeouts) */
	unsigned int log_rate;  /* rejection lines per second at most */
};

/* Defaults for a command ("attach" or "run"). */
void options_init(struct attach_args *a, const char *cmd);
/* Parse argv (argv[0] is the command). Returns 0, or EXIT_USAGE after printing why. */
int options_parse(int argc, char **argv, struct attach_args *a, const char *cmd, const char *help);
/* Read a config file of option lines (see `ppbpf run --help`). 0, or EXIT_USAGE / EXIT_FAIL after printing why. */
int options_read_config(const char *path, struct attach_args *a);
/* Attach if nothing is pinned yet (*fresh = true), then set the policy of every group. 0 or EXIT_FAIL. */
int options_apply(const struct attach_args *a, const char *cmd, bool *fresh);

/* Is the attachment in pin_dir on this cgroup? */
bool attached_to(const char *pin_dir, const char *cgroup_path);

#endif
