/* SPDX-License-Identifier: MIT */
/* The policy options shared by `ppbpf attach` and `ppbpf run`: parsing (strict) and applying. */
#ifndef PPBPF_CLI_OPTIONS_H
#define PPBPF_CLI_OPTIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <ppbpf/abi.h>
#include "cidr.h"
#include "loader.h"

struct json;

/* "1,2", "1" or "2" ("none": refuses both): the header versions a policy accepts. */
const char *versions_of(__u32 flags);
/* A port policy's fields as JSON keys of the object being written: mode, untrusted, ... local_uid. */
void json_port_policy(struct json *j, const struct ppbpf_port_policy *pol);
/* One remote port's outbound policy as a JSON object: port, version, tlvs, to (no block: any). */
void json_send_policy(struct json *j, __u16 port, const struct ppbpf_send_policy *pol, const struct cidr *to, int n_to);

/* --pin-dir of the commands that work on an attachment: detach, status, list. */
#define PIN_DIR_OPTION \
	{ .name = "pin-dir", .val = 'd', .metavar = "DIR", \
	  .help = "bpffs folder of the attachment (default " PPBPF_PIN_DIR ")" }

/* Most ports and trusted blocks one policy group takes. */
#define MAX_PORTS 64
#define MAX_TRUST 256
/* Most policy groups (config lines with a port) `ppbpf run` takes. */
#define MAX_GROUPS 32

/* The per-port options a group was given (each at most once). */
enum {
	SET_PORT = 1 << 0, SET_TRUST = 1 << 1, SET_REWRITE = 1 << 2, SET_MODE = 1 << 3, SET_UNTRUSTED = 1 << 4,
	SET_VERSIONS = 1 << 5, SET_TIMEOUT = 1 << 6, SET_MAX_HEADER = 1 << 7, SET_LOCAL_UID = 1 << 8, SET_TRANSPARENT = 1 << 9,
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

/* The sending side's options a group was given (each at most once). */
enum { SEND_SET_PORTS = 1 << 0, SEND_SET_TO = 1 << 1, SEND_SET_TLV = 1 << 2 };

/* Remote ports whose outgoing connections get a header, and the destinations that do. */
struct send_group {
	__u16 ports[MAX_PORTS];
	__u8 versions[MAX_PORTS]; /* 1 or 2, per port */
	int n_ports;
	struct cidr to[MAX_TRUST];
	int n_to;               /* 0: any destination */
	struct ppbpf_send_policy tlvs; /* --send-tlv: the TLV fields of every port's policy (version aside) */
	unsigned int set;       /* SEND_SET_* */
	int line;               /* its config line; 0: the command line */
};

/* Everything `attach` and `run` are told. */
struct attach_args {
	struct port_group groups[MAX_GROUPS];
	int n_groups;           /* groups with their ports, in the order given */
	struct send_group sends[MAX_GROUPS];
	int n_sends;            /* sending-side groups, in the order given */
	long tlv_cap;           /* -1: not given (attach: unchanged; run: the default) */
	char cgroup[PATH_MAX];  /* "": the cgroup2 root */
	char pin_dir[PATH_MAX];
	char devs[1024];        /* --dev: the interfaces for transparent mode; "": every one */
	unsigned long long table_size; /* 0: not given */
	bool verbose;
	bool check;             /* --check: print the policy, change nothing */
	/* `run` only */
	const char *config;     /* config file, re-read on SIGHUP */
	bool keep;              /* leave the programs pinned on exit */
	unsigned int sweep_ms;  /* how often the sweep runs (timeouts) */
	unsigned int log_rate;  /* rejection lines per second at most */
	struct sockaddr_storage metrics; /* --metrics: where /metrics is served (family 0: nowhere) */
	unsigned int given;     /* whole-attachment and daemon options given (each at most once) */
};

/* Has a group of a the transparent mode? */
bool any_transparent(const struct attach_args *a);

/* Where the option messages go (stderr; the fuzzers silence them). */
extern FILE *options_diag;

/* Defaults for a command ("attach" or "run"). */
void options_init(struct attach_args *a, const char *cmd);
/*
 * Parse argv (argv[0] is the command). -h or --help anywhere: print usage,
 * the options (run's own first) and more, and exit 0 (see cli_parse).
 * Returns 0, or EXIT_USAGE after printing why.
 */
int options_parse(int argc, char **argv, struct attach_args *a, const char *cmd, const char *usage,
		  const char *more);
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
 * port and the TLV cap included. Takes the lock of the pin folder. 0, or
 * EXIT_FAIL after saying why, having detached again what it attached.
 */
int options_apply(const struct attach_args *a, const char *cmd, bool exact, bool *fresh);

/* Is the attachment in pin_dir on this cgroup? */
bool attached_to(const char *pin_dir, const char *cgroup_path);

#endif
