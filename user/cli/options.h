/* SPDX-License-Identifier: MIT */
/* The policy options shared by `ppbpf attach` and `ppbpf run`: parsing (strict) and applying. */
#ifndef PPBPF_CLI_OPTIONS_H
#define PPBPF_CLI_OPTIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <ppbpf/abi.h>
#include "cidr.h"
#include "loader.h"

struct json;

/* "1,2", "1" or "2" ("none": refuses both): the header versions a policy accepts. */
const char *versions_of(__u32 flags);
/* A port policy's fields as JSON keys of the object being written: mode, untrusted, ... local_uid. */
void json_port_policy(struct json *j, const struct ppbpf_port_policy *pol);

/* The --help lines of the policy options, shared by attach and run. */
#define POLICY_OPTIONS_HELP \
	"Policy of the ports (changed live by running again):\n" \
	"  -p, --port P[,P...]      local ports that expect a PROXY header\n" \
	"  -t, --trust CIDR[,...]   sources whose headers are honoured on these ports: networks\n" \
	"                           (10.0.0.0/8, 2001:db8::/32; no host bits set) or addresses;\n" \
	"                           an IPv4 peer of a dual-stack socket matches IPv4 blocks.\n" \
	"                           Without --trust: any source (a warning is printed)\n" \
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
	"      --local-uid USER     a trusted peer on this host (a socket of this network\n" \
	"                           namespace, say a local HAProxy) must be this user's, a\n" \
	"                           name or a uid: else any local process could connect\n" \
	"                           from a trusted address and forge headers\n" \
	"Whole attachment:\n" \
	"      --tlv-cap BYTES      TLV bytes kept per socket (default 512, at most 1024)\n" \
	"  -c, --cgroup PATH        cgroup to attach to; relative paths are under the cgroup2\n" \
	"                           mount; default: its root (every service on the host)\n" \
	"  -d, --pin-dir DIR        bpffs folder for links and maps, ppbpf's alone, owned by\n" \
	"                           root and writable by no one else (default " PPBPF_PIN_DIR ")\n" \
	"      --table-size N       connection table capacity (default 65536; set when first\n" \
	"                           attached). When full, new tracked connections are reset\n" \
	"      --check              print the policy as JSON and exit; load and change nothing\n" \
	"  -v, --verbose            print libbpf's messages and verifier logs\n" \
	"  -h, --help               show this help\n" \
	"Each option at most once; numbers in plain decimal (or 0x hex). Whatever is\n" \
	"ambiguous (an empty list or item, a port in two policies, host bits under a\n" \
	"prefix, a v4-mapped IPv6 block, ...) is an error, never a guess.\n"

/* Most ports and trusted blocks one policy group takes. */
#define MAX_PORTS 64
#define MAX_TRUST 256
/* Most policy groups (config lines with a port) `ppbpf run` takes. */
#define MAX_GROUPS 32

/* The per-port options a group was given (each at most once). */
enum {
	SET_PORT = 1 << 0, SET_TRUST = 1 << 1, SET_REWRITE = 1 << 2, SET_MODE = 1 << 3, SET_UNTRUSTED = 1 << 4,
	SET_VERSIONS = 1 << 5, SET_TIMEOUT = 1 << 6, SET_MAX_HEADER = 1 << 7, SET_LOCAL_UID = 1 << 8,
};

/* Ports that share one policy and one list of trusted sources. */
struct port_group {
	__u16 ports[MAX_PORTS];
	int n_ports;
	struct cidr trust[MAX_TRUST];
	int n_trust;            /* 0: any source */
	struct ppbpf_port_policy pol;
	unsigned int set;       /* SET_* */
	int line;               /* its config line; 0: the command line */
};

/* Everything `attach` and `run` are told. */
struct attach_args {
	struct port_group groups[MAX_GROUPS];
	int n_groups;           /* groups with their ports, in the order given */
	long tlv_cap;           /* -1: not given (attach: unchanged; run: the default) */
	char cgroup[PATH_MAX];  /* "": the cgroup2 root */
	char pin_dir[PATH_MAX];
	unsigned long long table_size; /* 0: not given */
	bool verbose;
	bool check;             /* --check: print the policy, change nothing */
	/* `run` only */
	const char *config;     /* config file, re-read on SIGHUP */
	bool keep;              /* leave the programs pinned on exit */
	unsigned int sweep_ms;  /* how often the sweep runs (timeouts) */
	unsigned int log_rate;  /* rejection lines per second at most */
	unsigned int given;     /* whole-attachment and daemon options given (each at most once) */
};

/* Where the option messages go (stderr; the fuzzers silence them). */
extern FILE *options_diag;

/* Defaults for a command ("attach" or "run"). */
void options_init(struct attach_args *a, const char *cmd);
/* Parse argv (argv[0] is the command). Returns 0, or EXIT_USAGE after printing why. */
int options_parse(int argc, char **argv, struct attach_args *a, const char *cmd, const char *help);
/*
 * Read a config file of option lines (see `ppbpf run --help`) into a, after
 * the command line's options. 0, or EXIT_USAGE (an error, named FILE:LINE) /
 * EXIT_FAIL (the file cannot be read) after printing why.
 */
int options_read_config(const char *path, struct attach_args *a);
/* The same from an open stream, named `name` in messages. */
int options_read_config_stream(FILE *f, const char *name, struct attach_args *a);
/* The policy as one JSON object on one line (ports sorted; trust as it will be in the maps). */
void options_print_json(const struct attach_args *a, FILE *f);

/*
 * Attach if nothing is pinned yet (*fresh = true), then set the policy of
 * every group. exact (`run`): the policy becomes exactly a's, every other
 * port and the TLV cap included. Takes the lock of the pin folder. 0 or EXIT_FAIL.
 */
int options_apply(const struct attach_args *a, const char *cmd, bool exact, bool *fresh);

/* Is the attachment in pin_dir on this cgroup? */
bool attached_to(const char *pin_dir, const char *cgroup_path);

#endif
