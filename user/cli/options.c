// SPDX-License-Identifier: MIT
/*
 * The policy options shared by `ppbpf attach` and `ppbpf run`: the command
 * line and the config file. Strict: anything that could be read two ways is
 * an error (named by file and line in a config), never a policy. Nothing here
 * touches the kernel (apply.c does), so the fuzzers link this alone.
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "json.h"
#include "options.h"

/* Longest config line, newline included (the fuzzer builds with a smaller one to reach it). */
#ifndef PPBPF_CONFIG_LINE_MAX
#define PPBPF_CONFIG_LINE_MAX 65536
#endif

FILE *options_diag;

/* The options without a short letter. */
enum { OPT_TLV_CAP = CLI_LONG_ONLY, OPT_TABLE_SIZE, OPT_MODE, OPT_UNTRUSTED, OPT_VERSIONS, OPT_TIMEOUT,
       OPT_CONFIG, OPT_KEEP, OPT_SWEEP_MS, OPT_LOG_RATE, OPT_CHECK, OPT_LOCAL_UID, OPT_TRANSPARENT,
       OPT_DEV, OPT_SEND, OPT_SEND_TO, OPT_SEND_TLV, OPT_METRICS };

/* Where an option may be given (its scope); the first three are also its section of the help. */
enum { PER_PORT = 1, WHOLE = 2, RUN_ONLY = 4, CMDLINE_ONLY = 8, PER_SEND = 16 };

/*
 * The options of attach and run, and the keys of the config file. bit: SET_*
 * for per-port options, a bit of attach_args.given for the others; 0: may be
 * given again.
 */
static const struct cli_option defs[] = {
	{ "port", 'p', "P[,P...]", "local ports that expect a PROXY header", PER_PORT, SET_PORT },
	{ "trust", 't', "CIDR[,...]",
	  "sources whose headers are honoured on these ports: networks\n"
	  "(10.0.0.0/8, 2001:db8::/32; no host bits set) or addresses;\n"
	  "an IPv4 peer of a dual-stack socket matches IPv4 blocks.\n"
	  "Without --trust: any source (a warning is printed)", PER_PORT, SET_TRUST },
	{ "untrusted", OPT_UNTRUSTED, "plain|reject",
	  "what other sources get: plain (default) leaves the\n"
	  "connection untouched and honours nothing; reject resets it", PER_PORT, SET_UNTRUSTED },
	{ "mode", OPT_MODE, "required|optional",
	  "required (default): a trusted peer without a valid\n"
	  "header is reset; optional: no header is a plain\n"
	  "connection (an invalid one is still reset)", PER_PORT, SET_MODE },
	{ "optional", 'o', NULL, "the same as --mode optional", PER_PORT, SET_MODE },
	{ "versions", OPT_VERSIONS, "1|2|1,2",
	  "header versions accepted (default 1,2); others are reset", PER_PORT, SET_VERSIONS },
	{ "timeout", OPT_TIMEOUT, "MS",
	  "reset a header still incomplete this long after the\n"
	  "handshake (default 3000; 0: never). Needs `ppbpf run`", PER_PORT, SET_TIMEOUT },
	{ "max-header", 'm', "BYTES",
	  "largest header accepted (default and limit 4096; v1 is\n"
	  "always at most 107); a longer one is reset", PER_PORT, SET_MAX_HEADER },
	{ "rewrite-peer", 'r', NULL, "accept() and getpeername() return the original source", PER_PORT,
	  SET_REWRITE },
	{ "local-uid", OPT_LOCAL_UID, "USER",
	  "a trusted peer on this host (a socket of this network\n"
	  "namespace, say a local HAProxy) must be this user's, a\n"
	  "name or a uid: else any local process could connect\n"
	  "from a trusted address and forge headers", PER_PORT, SET_LOCAL_UID },
	{ "transparent", OPT_TRANSPARENT, NULL,
	  "take the header out of the stream in the kernel (tc), for\n"
	  "servers that cannot be changed: they read the payload only,\n"
	  "and accept()/getpeername() return the original source\n"
	  "(implies --rewrite-peer). Needs `ppbpf run` for timeouts", PER_PORT, SET_TRANSPARENT },
	{ "send", OPT_SEND, "P[:v1|v2][,...]",
	  "remote ports whose connections from the cgroup get a PROXY\n"
	  "header as their first bytes, written by the kernel (sk_msg),\n"
	  "with the socket's own addresses; v2 unless :v1 is given", PER_SEND, SEND_SET_PORTS },
	{ "send-to", OPT_SEND_TO, "CIDR[,...]",
	  "only connections to these destinations (default: any)", PER_SEND, SEND_SET_TO },
	{ "send-tlv", OPT_SEND_TLV, "TLV[,...]",
	  "v2 TLVs of the sent headers: crc32c, unique-id (32 random\n"
	  "hex digits per connection), authority=NAME, alpn=PROTO", PER_SEND, SEND_SET_TLV },
	{ "tlv-cap", OPT_TLV_CAP, "BYTES", "TLV bytes kept per socket (default 512, at most 1024)",
	  WHOLE, 1 << 0 },
	{ "cgroup", 'c', "PATH",
	  "cgroup to attach to; relative paths are under the cgroup2\n"
	  "mount; default: its root (every service on the host)", WHOLE, 1 << 1 },
	{ "pin-dir", 'd', "DIR",
	  "bpffs folder for links and maps, ppbpf's alone, owned by\n"
	  "root and writable by no one else (default " PPBPF_PIN_DIR ")", WHOLE, 1 << 2 },
	{ "dev", OPT_DEV, "IF[,IF...]",
	  "interfaces where --transparent ports take packets (default:\n"
	  "every Ethernet interface and lo of this network namespace)", WHOLE, 1 << 8 },
	{ "table-size", OPT_TABLE_SIZE, "N",
	  "connection table capacity (default 65536; set when first\n"
	  "attached). When full, new tracked connections are reset", WHOLE, 1 << 3 },
	{ "check", OPT_CHECK, NULL, "print the policy as JSON and exit; load and change nothing",
	  WHOLE | CMDLINE_ONLY, 1 << 4 },
	{ "verbose", 'v', NULL, "print libbpf's messages and verifier logs", WHOLE, 0 },
	{ "help", 'h', NULL, "show this help", WHOLE | CMDLINE_ONLY, 0 },
	{ "config", OPT_CONFIG, "FILE",
	  "policy from a file: each option as its full long name\n"
	  "without the dashes, then its value, separated by\n"
	  "spaces or tabs; each line with a port is a policy group,\n"
	  "and per-port options go on that line; '#' starts a\n"
	  "comment. Lines of at most 65536 bytes, no NUL or\n"
	  "control bytes. Re-read on SIGHUP", RUN_ONLY | CMDLINE_ONLY, 1 << 5 },
	{ "keep", OPT_KEEP, NULL, "on exit, leave the programs attached and pinned", RUN_ONLY, 0 },
	{ "sweep-ms", OPT_SWEEP_MS, "MS",
	  "how often to look for late headers (default 100); after\n"
	  "rejections the sweep runs sooner, at most every 10 ms", RUN_ONLY, 1 << 6 },
	{ "log-rate", OPT_LOG_RATE, "N", "rejection lines per second at most (default 10; 0: none)",
	  RUN_ONLY, 1 << 7 },
	{ "metrics", OPT_METRICS, "[ADDR:]PORT",
	  "serve Prometheus metrics over HTTP at /metrics; ADDR\n"
	  "defaults to 127.0.0.1 (IPv6: [ADDR]:PORT). Bound at start:\n"
	  "a reload does not move it", RUN_ONLY, 1 << 8 },
};
#define N_DEFS (sizeof(defs) / sizeof(defs[0]))

/* Where a message is about: the command line (file NULL) or a config line. */
struct where {
	const char *cmd;
	const char *file;
	int line;
};

static FILE *diag(void)
{
	return options_diag ? options_diag : stderr;
}

/* Say what is wrong, where. Returns EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) static int say(const struct where *w, const char *fmt, ...)
{
	va_list ap;

	if (w->file)
		fprintf(diag(), "ppbpf %s: %s:%d: ", w->cmd, w->file, w->line);
	else
		fprintf(diag(), "ppbpf %s: ", w->cmd);
	va_start(ap, fmt);
	vfprintf(diag(), fmt, ap);
	va_end(ap);
	fputc('\n', diag());
	if (!w->file)
		fprintf(diag(), "Try 'ppbpf %s --help'.\n", w->cmd);
	return EXIT_USAGE;
}

static void group_init(struct port_group *g, int line)
{
	memset(g, 0, sizeof(*g));
	g->pol.timeout_ms = PPBPF_TIMEOUT_DEFAULT_MS;
	g->line = line;
}

void options_init(struct attach_args *a, const char *cmd)
{
	memset(a, 0, sizeof(*a));
	a->tlv_cap = -1;
	snprintf(a->pin_dir, sizeof(a->pin_dir), "%s", PPBPF_PIN_DIR);
	group_init(&a->groups[0], 0);
	if (!strcmp(cmd, "run")) {
		a->sweep_ms = 100;
		a->log_rate = 10;
	}
}

/*
 * Split a comma list and hand each item to fn. An empty list or an empty
 * item is an error (an empty trust list would mean "any source"). Returns
 * the first error message, or NULL; *bad is the item it is about.
 */
static const char *each_item(const char *list, void *g, const char **bad,
			     const char *(*fn)(const char *item, void *g))
{
	static char item[256];

	*bad = list;
	if (!*list)
		return "an empty list";
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *err;

		if (!n) {
			*bad = list;
			return "an empty item in the list";
		}
		if (n >= sizeof(item))
			return "an item too long to be one";
		memcpy(item, p, n);
		item[n] = '\0';
		*bad = item;
		err = fn(item, g);
		if (err)
			return err;
		if (!comma)
			return NULL;
		p = comma + 1;
	}
}

static const char *add_port(const char *item, void *gv)
{
	struct port_group *g = gv;
	unsigned long long v;

	if (parse_uint(item, 65535, &v) || v == 0)
		return "not a port 1..65535 (plain decimal)";
	for (int i = 0; i < g->n_ports; i++)
		if (g->ports[i] == v)
			return "a port listed twice";
	if (g->n_ports == MAX_PORTS)
		return "more than 64 ports in one policy";
	g->ports[g->n_ports++] = (__u16)v;
	return NULL;
}

static const char *cidr_why;

static const char *add_trust(const char *item, void *gv)
{
	struct port_group *g = gv;
	struct cidr c;

	if (cidr_parse(item, &c, &cidr_why))
		return cidr_why;
	for (int i = 0; i < g->n_trust; i++)
		if (cidr_equal(&g->trust[i], &c))
			return "a block listed twice";
	if (g->n_trust == MAX_TRUST)
		return "more than 256 trusted blocks in one policy";
	g->trust[g->n_trust++] = c;
	return NULL;
}

static const char *accept_version(const char *item, void *gv)
{
	struct port_group *g = gv;
	__u32 bit;

	if (!strcmp(item, "1") || !strcmp(item, "v1"))
		bit = PPBPF_PORT_NO_V1;
	else if (!strcmp(item, "2") || !strcmp(item, "v2"))
		bit = PPBPF_PORT_NO_V2;
	else
		return "must be 1, 2 or 1,2";
	if (!(g->pol.flags & bit))
		return "a version listed twice";
	g->pol.flags &= ~bit;
	return NULL;
}

/* A remote port of --send, with its version: "P", "P:v1" or "P:v2". */
static const char *add_send_port(const char *item, void *gv)
{
	struct send_group *g = gv;
	char num[8] = "";
	const char *colon = strchr(item, ':');
	size_t n = colon ? (size_t)(colon - item) : strlen(item);
	unsigned long long v;
	__u8 version = 2;

	if (n >= sizeof(num))
		return "not a port 1..65535 (plain decimal)";
	memcpy(num, item, n);
	if (parse_uint(num, 65535, &v) || v == 0)
		return "not a port 1..65535 (plain decimal)";
	if (colon && !strcmp(colon + 1, "v1"))
		version = 1;
	else if (colon && strcmp(colon + 1, "v2"))
		return "the version after ':' must be v1 or v2";
	for (int i = 0; i < g->n_ports; i++)
		if (g->ports[i] == v)
			return "a port listed twice";
	if (g->n_ports == MAX_PORTS)
		return "more than 64 ports in one policy";
	g->versions[g->n_ports] = version;
	g->ports[g->n_ports++] = (__u16)v;
	return NULL;
}

static const char *add_send_to(const char *item, void *gv)
{
	struct send_group *g = gv;
	struct cidr c;

	if (cidr_parse(item, &c, &cidr_why))
		return cidr_why;
	for (int i = 0; i < g->n_to; i++)
		if (cidr_equal(&g->to[i], &c))
			return "a block listed twice";
	if (g->n_to == MAX_TRUST)
		return "more than 256 destination blocks in one policy";
	g->to[g->n_to++] = c;
	return NULL;
}

/* One item of --send-tlv. */
static const char *add_send_tlv(const char *item, void *gv)
{
	struct send_group *g = gv;
	struct ppbpf_send_policy *t = &g->tlvs;
	size_t n;

	if (!strcmp(item, "crc32c") || !strcmp(item, "unique-id")) {
		__u32 bit = item[0] == 'c' ? PPBPF_SEND_CRC32C : PPBPF_SEND_UNIQUE_ID;

		if (t->flags & bit)
			return "a TLV listed twice";
		t->flags |= bit;
		return NULL;
	}
	if (!strncmp(item, "authority=", 10)) {
		n = strlen(item + 10);
		if (t->authority_len)
			return "a TLV listed twice";
		if (!n || n > PPBPF_SEND_AUTHORITY_MAX)
			return "authority= needs 1 to 255 bytes";
		memcpy(t->authority, item + 10, n);
		t->authority_len = (__u8)n;
		return NULL;
	}
	if (!strncmp(item, "alpn=", 5)) {
		n = strlen(item + 5);
		if (t->alpn_len)
			return "a TLV listed twice";
		if (!n || n > PPBPF_SEND_ALPN_MAX)
			return "alpn= needs 1 to 64 bytes";
		memcpy(t->alpn, item + 5, n);
		t->alpn_len = (__u8)n;
		return NULL;
	}
	return "not crc32c, unique-id, authority=NAME or alpn=PROTO";
}

/* An option of the sending side into the group being read. Returns EXIT_USAGE after saying why, or 0. */
static int apply_send_option(struct send_group *g, const struct cli_option *d, const char *arg, const struct where *w)
{
	const char *err, *bad = arg;

	if (g->set & d->bit)
		return say(w, "'%s' given twice in one policy", d->name);
	g->set |= d->bit;
	err = each_item(arg, g, &bad, d->val == OPT_SEND ? add_send_port : d->val == OPT_SEND_TO ? add_send_to : add_send_tlv);
	if (!err)
		return 0;
	if (strcmp(bad, arg))
		return say(w, "%s '%s': '%s': %s", d->name, arg, bad, err);
	return say(w, "%s '%s': %s", d->name, arg, err);
}

/* A user: a name of the system's, or a uid in decimal. NULL or why not. */
static const char *user_value(const char *arg, __u32 *uid)
{
	unsigned long long v;
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (!parse_uint(arg, 0xfffffffeULL, &v)) { /* (uid_t)-1 is no user */
		*uid = (__u32)v;
		return NULL;
	}
	if (getpwnam_r(arg, &pw, buf, sizeof(buf), &found) || !found)
		return "no such user (a name, or a uid)";
	*uid = (__u32)found->pw_uid;
	return NULL;
}

/* A path option: not empty, no ".." component, fits. NULL or why not. */
static const char *path_value(const char *arg, char *out, size_t cap, bool absolute)
{
	size_t n = strlen(arg);

	if (!n)
		return "an empty path";
	if (absolute && arg[0] != '/')
		return "must be an absolute path";
	if (n >= cap)
		return "a path too long";
	for (const char *p = arg; (p = strstr(p, "..")); p += 2)
		if ((p == arg || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
			return "a path with a '..' component";
	memcpy(out, arg, n + 1);
	return NULL;
}

/* One option's value into a and the group g. Returns EXIT_USAGE after saying why, or 0. */

/*
 * A listening address: PORT (on 127.0.0.1), ADDR:PORT, or [IPV6]:PORT, in
 * the strict address forms of cidr.c. NULL, or what is wrong.
 */
static const char *listen_address(const char *arg, struct sockaddr_storage *out)
{
	const char *colon = strrchr(arg, ':'), *port_text = colon ? colon + 1 : arg;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
	struct sockaddr_in *in = (struct sockaddr_in *)out;
	char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1";
	unsigned long long port;
	size_t n = colon ? (size_t)(colon - arg) : 0;

	if (parse_uint(port_text, 65535, &port) || port == 0)
		return "not a port (1-65535), or ADDR:PORT";
	if (colon) {
		if (n >= sizeof(host))
			return "not an address";
		memcpy(host, arg, n);
		host[n] = 0;
	}
	memset(out, 0, sizeof(*out));
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		host[n - 1] = 0;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((__u16)port);
		return ppbpf_parse_ip(AF_INET6, host + 1, &in6->sin6_addr) ? "not an IPv6 address" : NULL;
	}
	in->sin_family = AF_INET;
	in->sin_port = htons((__u16)port);
	return ppbpf_parse_ip(AF_INET, host, &in->sin_addr) ? "not an IPv4 address (IPv6: [ADDR]:PORT)" : NULL;
}

static int apply_option(struct attach_args *a, struct port_group *g, const struct cli_option *d, const char *arg,
			const struct where *w)
{
	unsigned long long v;
	const char *err = NULL, *bad = arg;

	if (d->scope & PER_SEND)
		return apply_send_option(&a->sends[a->n_sends], d, arg, w);
	if (d->scope & PER_PORT) {
		if (g->set & d->bit)
			return say(w, d->val == 'o' || d->val == OPT_MODE ? "'%s': the mode is given twice in one policy"
									  : "'%s' given twice in one policy",
				   d->name);
		g->set |= d->bit;
	} else if (d->bit) {
		if (a->given & d->bit)
			return say(w, "'%s' given twice", d->name);
		a->given |= d->bit;
	}
	switch (d->val) {
	case 'p': err = each_item(arg, g, &bad, add_port); break;
	case 't': err = each_item(arg, g, &bad, add_trust); break;
	case 'r': g->pol.flags |= PPBPF_PORT_REWRITE_PEER; break;
	case 'o': g->pol.flags |= PPBPF_PORT_OPTIONAL; break;
	case OPT_MODE:
		if (!strcmp(arg, "optional"))
			g->pol.flags |= PPBPF_PORT_OPTIONAL;
		else if (strcmp(arg, "required"))
			err = "must be required or optional";
		break;
	case OPT_UNTRUSTED:
		if (!strcmp(arg, "reject"))
			g->pol.flags |= PPBPF_PORT_REJECT_UNTRUSTED;
		else if (strcmp(arg, "plain"))
			err = "must be plain or reject";
		break;
	case OPT_VERSIONS:
		g->pol.flags |= PPBPF_PORT_NO_V1 | PPBPF_PORT_NO_V2;
		err = each_item(arg, g, &bad, accept_version);
		break;
	case OPT_TIMEOUT:
		if (parse_uint(arg, 3600 * 1000, &v))
			err = "must be 0..3600000 ms";
		else
			g->pol.timeout_ms = (__u32)v;
		break;
	case 'm':
		if (parse_uint(arg, 4096, &v) || v < PPBPF_MIN_LEN)
			err = "must be 15..4096";
		else
			g->pol.max_header = (__u32)v;
		break;
	case OPT_TRANSPARENT: g->pol.flags |= PPBPF_PORT_TRANSPARENT | PPBPF_PORT_REWRITE_PEER; break;
	case OPT_DEV:
		if (!*arg || strlen(arg) >= sizeof(a->devs))
			err = "must be a comma list of interface names";
		else
			snprintf(a->devs, sizeof(a->devs), "%s", arg);
		break;
	case OPT_LOCAL_UID:
		err = user_value(arg, &g->pol.local_uid);
		if (!err)
			g->pol.flags |= PPBPF_PORT_LOCAL_UID;
		break;
	case OPT_TLV_CAP:
		if (parse_uint(arg, PPBPF_TLV_MAX, &v))
			err = "must be 0..1024";
		else
			a->tlv_cap = (long)v;
		break;
	case 'c': err = path_value(arg, a->cgroup, sizeof(a->cgroup), false); break;
	case 'd': err = path_value(arg, a->pin_dir, sizeof(a->pin_dir), true); break;
	case OPT_TABLE_SIZE:
		if (parse_uint(arg, 1u << 24, &v) || v == 0)
			err = "must be 1..16777216";
		else
			a->table_size = v;
		break;
	case 'v': a->verbose = true; break;
	case OPT_CHECK: a->check = true; break;
	case OPT_CONFIG: a->config = arg; break;
	case OPT_KEEP: a->keep = true; break;
	case OPT_SWEEP_MS:
		if (parse_uint(arg, 60000, &v) || v < 10)
			err = "must be 10..60000 ms";
		else
			a->sweep_ms = (unsigned int)v;
		break;
	case OPT_LOG_RATE:
		if (parse_uint(arg, 100000, &v))
			err = "must be 0..100000 lines per second";
		else
			a->log_rate = (unsigned int)v;
		break;
	case OPT_METRICS:
		err = listen_address(arg, &a->metrics);
		break;
	}
	if (!err)
		return 0;
	if (strcmp(bad, arg))
		return say(w, "%s '%s': '%s': %s", d->name, arg, bad, err);
	return say(w, "%s '%s': %s", d->name, arg, err);
}

/*
 * A group is complete: its ports must be in no other group, and all groups
 * must fit the kernel side's maps. Then it counts. 0 or EXIT_USAGE.
 */
static int finish_group(struct attach_args *a, const struct where *w)
{
	struct port_group *g = &a->groups[a->n_groups];
	long ports = g->n_ports, keys[2] = { 0, 0 };

	if ((g->pol.flags & PPBPF_PORT_TRANSPARENT) && (g->pol.flags & PPBPF_PORT_LOCAL_UID))
		return say(w, "--local-uid and --transparent: tc sees no socket owner; use --untrusted reject and "
			      "a trust list without this host's addresses");

	for (int k = 0; k < a->n_groups; k++) {
		const struct port_group *o = &a->groups[k];

		for (int i = 0; i < g->n_ports; i++)
			for (int j = 0; j < o->n_ports; j++)
				if (g->ports[i] == o->ports[j])
					return o->line ? say(w, "port %u is already in the policy of line %d", g->ports[i],
							     o->line)
						       : say(w, "port %u is already in the policy of the command line",
							     g->ports[i]);
		ports += o->n_ports;
	}
	if (ports > PPBPF_PORTS_MAX)
		return say(w, "more than %d ports in all: the kernel side holds %d", PPBPF_PORTS_MAX, PPBPF_PORTS_MAX);
	for (int k = 0; k <= a->n_groups; k++) {
		const struct port_group *o = &a->groups[k];
		long v4 = 0;

		for (int t = 0; t < o->n_trust; t++)
			v4 += o->trust[t].af == AF_INET;
		keys[0] += (o->n_trust ? v4 : 1) * o->n_ports;
		keys[1] += (o->n_trust ? o->n_trust - v4 : 1) * o->n_ports;
	}
	if (keys[0] > PPBPF_TRUST_MAX || keys[1] > PPBPF_TRUST_MAX)
		return say(w, "more than %d trusted blocks times ports of one family in all: the kernel side holds %d",
			   PPBPF_TRUST_MAX, PPBPF_TRUST_MAX);
	a->n_groups++;
	return 0;
}

/*
 * A sending-side group is complete: its ports in no other group, and every
 * group's destinations within the kernel side's maps. 0 or EXIT_USAGE.
 */
static int finish_send_group(struct attach_args *a, const struct where *w)
{
	struct send_group *g = &a->sends[a->n_sends];
	long ports = g->n_ports, keys[2] = { 0, 0 };

	if (!(g->set & SEND_SET_PORTS))
		return say(w, "--send-to or --send-tlv without --send");
	for (int i = 0; (g->set & SEND_SET_TLV) && i < g->n_ports; i++)
		if (g->versions[i] != 2)
			return say(w, "--send-tlv: TLVs need v2, and port %u is :v1", g->ports[i]);
	for (int k = 0; k < a->n_sends; k++) {
		const struct send_group *o = &a->sends[k];

		for (int i = 0; i < g->n_ports; i++)
			for (int j = 0; j < o->n_ports; j++)
				if (g->ports[i] == o->ports[j])
					return o->line ? say(w, "remote port %u is already sent to on line %d", g->ports[i],
							     o->line)
						       : say(w, "remote port %u is already sent to on the command line",
							     g->ports[i]);
		ports += o->n_ports;
	}
	if (ports > PPBPF_PORTS_MAX)
		return say(w, "more than %d remote ports in all: the kernel side holds %d", PPBPF_PORTS_MAX,
			   PPBPF_PORTS_MAX);
	for (int k = 0; k <= a->n_sends; k++) {
		const struct send_group *o = &a->sends[k];
		long v4 = 0;

		for (int t = 0; t < o->n_to; t++)
			v4 += o->to[t].af == AF_INET;
		keys[0] += (o->n_to ? v4 : 1) * o->n_ports;
		keys[1] += (o->n_to ? o->n_to - v4 : 1) * o->n_ports;
	}
	if (keys[0] > PPBPF_TRUST_MAX || keys[1] > PPBPF_TRUST_MAX)
		return say(w, "more than %d destination blocks times ports of one family in all: the kernel side "
			      "holds %d", PPBPF_TRUST_MAX, PPBPF_TRUST_MAX);
	a->n_sends++;
	return 0;
}

/* What the command line's options go into. */
struct cmdline {
	struct attach_args *a;
	struct where w;
};

static int cmdline_option(void *ctx, const struct cli_option *d, const char *arg)
{
	struct cmdline *c = ctx;

	if ((d->scope & RUN_ONLY) && strcmp(c->w.cmd, "run"))
		return say(&c->w, "'--%s' is an option of ppbpf run", d->name);
	return apply_option(c->a, &c->a->groups[c->a->n_groups], d, arg, &c->w);
}

/* The --help of the policy options, as attach has them. */
static void policy_help(FILE *f)
{
	fputs("Policy of the ports (changed live by running again):\n", f);
	cli_print_options(f, defs, N_DEFS, PER_PORT);
	fputs("The sending side (changed live by running again):\n", f);
	cli_print_options(f, defs, N_DEFS, PER_SEND);
	fputs("Whole attachment:\n", f);
	cli_print_options(f, defs, N_DEFS, WHOLE);
	fputs("Each option at most once; numbers in plain decimal (or 0x hex). Whatever is\n"
	      "ambiguous (an empty list or item, a port in two policies, host bits under a\n"
	      "prefix, a v4-mapped IPv6 block, ...) is an error, never a guess.\n", f);
}

/* run's: its own options first. */
static void run_help(FILE *f)
{
	fputs("Daemon options:\n", f);
	cli_print_options(f, defs, N_DEFS, RUN_ONLY);
	fputc('\n', f);
	policy_help(f);
}

int options_parse(int argc, char **argv, struct attach_args *a, const char *cmd, const char *usage, const char *more)
{
	const struct cli_command command = {
		.name = cmd, .opts = defs, .n_opts = N_DEFS, .usage = usage, .more = more,
		.options_help = strcmp(cmd, "run") ? policy_help : run_help, .apply = cmdline_option,
	};
	struct cmdline c = { .a = a, .w = { .cmd = cmd } };
	struct port_group *g = &a->groups[a->n_groups];
	int rc;

	group_init(g, 0);
	memset(&a->sends[a->n_sends], 0, sizeof(a->sends[a->n_sends]));
	rc = cli_parse(&command, argc, argv, &c);
	if (rc)
		return rc;
	if (g->set && !(g->set & SET_PORT))
		return say(&c.w, "policy options without --port");
	if (g->set & SET_PORT)
		rc = finish_group(a, &c.w);
	if (!rc && a->sends[a->n_sends].set)
		rc = finish_send_group(a, &c.w);
	return rc;
}

/* One word of a config line as the option it names: exact names only, no abbreviation, no "=". */
static const struct cli_option *config_key(const char *word)
{
	for (size_t i = 0; i < N_DEFS; i++)
		if (!strcmp(defs[i].name, word))
			return defs[i].scope & CMDLINE_ONLY ? NULL : &defs[i];
	return NULL;
}

/*
 * One config line (its bytes, newline included) into a. Each line with a
 * `port` is one policy group; per-port options go only on such a line.
 */
static int config_line(struct attach_args *a, char *line, size_t len, const struct where *w)
{
	/* (a line has at most half as many words as bytes) */
	static const struct cli_option *d[PPBPF_CONFIG_LINE_MAX / 2 + 1];
	static char *word[PPBPF_CONFIG_LINE_MAX / 2 + 1], *value[PPBPF_CONFIG_LINE_MAX / 2 + 1];
	int n_words = 0, n_opts = 0, has_port = 0, has_send = 0;
	struct port_group *g = &a->groups[a->n_groups];

	if (len > PPBPF_CONFIG_LINE_MAX)
		return say(w, "a line longer than %d bytes", PPBPF_CONFIG_LINE_MAX);
	if (len && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len && line[len - 1] == '\r') /* CRLF */
		line[--len] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (!ch)
			return say(w, "a NUL byte (column %zu)", i + 1);
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return say(w, "a control character 0x%02x (column %zu)", ch, i + 1);
	}
	line[len] = '\0';
	if (strchr(line, '#'))
		*strchr(line, '#') = '\0';
	for (char *save = NULL, *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
		word[n_words++] = tok;
	for (int i = 0; i < n_words; n_opts++) {
		d[n_opts] = config_key(word[i]);
		if (!d[n_opts])
			return say(w, "'%s' is not a config key (keys are the long options without dashes, in full)",
				   word[i]);
		if ((d[n_opts]->scope & RUN_ONLY) && strcmp(w->cmd, "run"))
			return say(w, "'%s' is an option of ppbpf run", word[i]);
		value[n_opts] = NULL;
		if (d[n_opts]->metavar) {
			if (i + 1 >= n_words)
				return say(w, "'%s' needs a value", word[i]);
			value[n_opts] = word[i + 1];
		}
		has_port |= d[n_opts]->val == 'p';
		has_send |= d[n_opts]->val == OPT_SEND;
		i += d[n_opts]->metavar ? 2 : 1;
	}
	if (!n_opts)
		return 0;
	if (has_port && has_send)
		return say(w, "'port' and 'send' on one line: each line is one policy, of the receiving or of the "
			      "sending side");
	if (has_port) {
		if (a->n_groups == MAX_GROUPS)
			return say(w, "more than %d lines with a port", MAX_GROUPS);
		group_init(g, w->line);
	}
	if (has_send) {
		if (a->n_sends == MAX_GROUPS)
			return say(w, "more than %d lines with 'send'", MAX_GROUPS);
		memset(&a->sends[a->n_sends], 0, sizeof(a->sends[a->n_sends]));
		a->sends[a->n_sends].line = w->line;
	}
	for (int i = 0; i < n_opts; i++) {
		int rc;

		if ((d[i]->scope & PER_PORT) && !has_port)
			return say(w, "'%s' on a line without 'port': each line with a port is one policy, and its "
				      "options go on that line",
				   d[i]->name);
		if ((d[i]->scope & PER_SEND) && !has_send)
			return say(w, "'%s' on a line without 'send': it goes on the line of its 'send'", d[i]->name);
		rc = apply_option(a, g, d[i], value[i], w);
		if (rc)
			return rc;
	}
	if (has_send)
		return finish_send_group(a, w);
	return has_port ? finish_group(a, w) : 0;
}

/*
 * The next line, newline included, into buf (NUL bytes kept: *len counts
 * them). 1: a line; 0: the end; -1: longer than cap - 1 bytes.
 */
static int read_line(FILE *f, char *buf, size_t cap, size_t *len)
{
	int ch;

	*len = 0;
	while ((ch = getc(f)) != EOF) {
		if (*len + 1 >= cap)
			return -1;
		buf[(*len)++] = (char)ch;
		if (ch == '\n')
			break;
	}
	buf[*len] = '\0';
	return *len ? 1 : 0;
}

int options_read_config_stream(FILE *f, const char *name, struct attach_args *a)
{
	static char line[PPBPF_CONFIG_LINE_MAX + 2];
	struct where w = { .cmd = "run", .file = name };
	size_t len;
	int rc = 0, got;

	while (!rc && (got = read_line(f, line, sizeof(line), &len)) != 0) {
		w.line++;
		if (got < 0)
			return say(&w, "a line longer than %d bytes", PPBPF_CONFIG_LINE_MAX);
		rc = config_line(a, line, len, &w);
	}
	if (!rc && ferror(f)) {
		fprintf(diag(), "ppbpf run: failed to read %s: %s\n", name, strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

int options_read_config(const char *path, struct attach_args *a)
{
	FILE *f = fopen(path, "re");
	int rc;

	if (!f) {
		fprintf(diag(), "ppbpf run: failed to open %s: %s\n", path, strerror(errno));
		return EXIT_FAIL;
	}
	rc = options_read_config_stream(f, path, a);
	fclose(f);
	return rc;
}

const char *versions_of(__u32 flags)
{
	if (flags & PPBPF_PORT_NO_V1)
		return flags & PPBPF_PORT_NO_V2 ? "none" : "2";
	return flags & PPBPF_PORT_NO_V2 ? "1" : "1,2";
}

void json_port_policy(struct json *j, const struct ppbpf_port_policy *pol)
{
	json_kv_str(j, "mode", pol->flags & PPBPF_PORT_OPTIONAL ? "optional" : "required");
	json_kv_str(j, "untrusted", pol->flags & PPBPF_PORT_REJECT_UNTRUSTED ? "reject" : "plain");
	json_kv_str(j, "versions", versions_of(pol->flags));
	json_kv_int(j, "timeout_ms", pol->timeout_ms);
	json_kv_int(j, "max_header", pol->max_header ? pol->max_header : 4096);
	json_key(j, "rewrite_peer");
	json_bool(j, pol->flags & PPBPF_PORT_REWRITE_PEER);
	json_key(j, "transparent");
	json_bool(j, pol->flags & PPBPF_PORT_TRANSPARENT);
	json_key(j, "local_uid");
	if (pol->flags & PPBPF_PORT_LOCAL_UID)
		json_int(j, pol->local_uid);
	else
		json_null(j);
}

/* A port and its group, to list them by port. */
struct port_ref {
	__u16 port;
	const struct port_group *g;
};

static int by_port(const void *x, const void *y)
{
	return (int)((const struct port_ref *)x)->port - (int)((const struct port_ref *)y)->port;
}

void options_print_json(const struct attach_args *a, FILE *f)
{
	static const struct cidr any[2] = { { .af = AF_INET }, { .af = AF_INET6 } };
	static struct port_ref refs[MAX_GROUPS * MAX_PORTS];
	struct json j;
	int n = 0;

	for (int k = 0; k < a->n_groups; k++)
		for (int i = 0; i < a->groups[k].n_ports; i++)
			refs[n++] = (struct port_ref){ a->groups[k].ports[i], &a->groups[k] };
	qsort(refs, (size_t)n, sizeof(refs[0]), by_port);

	json_init(&j, f);
	json_obj_begin(&j);
	json_key(&j, "cgroup");
	if (a->cgroup[0])
		json_str(&j, a->cgroup);
	else
		json_null(&j);
	json_kv_str(&j, "pin_dir", a->pin_dir);
	json_key(&j, "tlv_cap");
	if (a->tlv_cap >= 0)
		json_int(&j, a->tlv_cap);
	else
		json_null(&j);
	json_key(&j, "table_size");
	if (a->table_size)
		json_int(&j, (long long)a->table_size);
	else
		json_null(&j);
	json_key(&j, "ports");
	json_arr_begin(&j);
	for (int r = 0; r < n; r++) {
		const struct port_group *g = refs[r].g;
		const struct cidr *trust = g->n_trust ? g->trust : any;
		int n_trust = g->n_trust ? g->n_trust : 2;

		json_obj_begin(&j);
		json_kv_int(&j, "port", refs[r].port);
		json_key(&j, "trust");
		json_arr_begin(&j);
		for (int t = 0; t < n_trust; t++) {
			char txt[CIDR_STRLEN];

			cidr_format(&trust[t], txt, sizeof(txt));
			json_str(&j, txt);
		}
		json_arr_end(&j);
		json_port_policy(&j, &g->pol);
		json_obj_end(&j);
	}
	json_arr_end(&j);
	json_key(&j, "send");
	json_arr_begin(&j);
	for (int k = 0; k < a->n_sends; k++)
		for (int i = 0; i < a->sends[k].n_ports; i++)
		{
			struct ppbpf_send_policy pol = a->sends[k].tlvs;

			pol.version = a->sends[k].versions[i];
			json_send_policy(&j, a->sends[k].ports[i], &pol, a->sends[k].to, a->sends[k].n_to);
		}
	json_arr_end(&j);
	json_obj_end(&j);
	json_end(&j);
}

/* A TLV value as a JSON string, or null when there is none. */
static void json_tlv_text(struct json *j, const char *key, const __u8 *v, size_t n)
{
	char txt[PPBPF_SEND_AUTHORITY_MAX + 1];

	json_key(j, key);
	if (!n) {
		json_null(j);
		return;
	}
	memcpy(txt, v, n);
	txt[n] = '\0';
	json_str(j, txt);
}

void json_send_policy(struct json *j, __u16 port, const struct ppbpf_send_policy *pol, const struct cidr *to, int n_to)
{
	static const struct cidr any[2] = { { .af = AF_INET }, { .af = AF_INET6 } };

	json_obj_begin(j);
	json_kv_int(j, "port", port);
	json_kv_int(j, "version", pol->version);
	json_key(j, "tlvs");
	json_obj_begin(j);
	json_key(j, "crc32c");
	json_bool(j, pol->flags & PPBPF_SEND_CRC32C);
	json_key(j, "unique_id");
	json_bool(j, pol->flags & PPBPF_SEND_UNIQUE_ID);
	json_tlv_text(j, "authority", pol->authority, pol->authority_len);
	json_tlv_text(j, "alpn", pol->alpn, pol->alpn_len);
	json_obj_end(j);
	json_key(j, "to");
	json_arr_begin(j);
	for (int t = 0; t < (n_to ? n_to : 2); t++) {
		char txt[CIDR_STRLEN];

		cidr_format(n_to ? &to[t] : &any[t], txt, sizeof(txt));
		json_str(j, txt);
	}
	json_arr_end(j);
	json_obj_end(j);
}
