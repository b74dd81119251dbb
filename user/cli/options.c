// SPDX-License-Identifier: MIT
/* The policy options shared by `ppbpf attach` and `ppbpf run`, and applying them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "loader.h"
#include "options.h"

/* Long-only options get codes past the ASCII range. */
enum { OPT_TLV_CAP = 256, OPT_TABLE_SIZE, OPT_MODE, OPT_UNTRUSTED, OPT_VERSIONS, OPT_TIMEOUT,
       OPT_CONFIG, OPT_KEEP, OPT_SWEEP_MS, OPT_LOG_RATE };

static const struct option attach_opts[] = {
	{ "port", required_argument, NULL, 'p' },       { "trust", required_argument, NULL, 't' },
	{ "rewrite-peer", no_argument, NULL, 'r' },      { "optional", no_argument, NULL, 'o' },
	{ "mode", required_argument, NULL, OPT_MODE },   { "untrusted", required_argument, NULL, OPT_UNTRUSTED },
	{ "versions", required_argument, NULL, OPT_VERSIONS }, { "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "max-header", required_argument, NULL, 'm' },  { "tlv-cap", required_argument, NULL, OPT_TLV_CAP },
	{ "cgroup", required_argument, NULL, 'c' },      { "pin-dir", required_argument, NULL, 'd' },
	{ "table-size", required_argument, NULL, OPT_TABLE_SIZE }, { "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	/* run only; refused by attach below */
	{ "config", required_argument, NULL, OPT_CONFIG }, { "keep", no_argument, NULL, OPT_KEEP },
	{ "sweep-ms", required_argument, NULL, OPT_SWEEP_MS }, { "log-rate", required_argument, NULL, OPT_LOG_RATE },
	{ 0 },
};

static void group_init(struct port_group *g)
{
	memset(g, 0, sizeof(*g));
	g->pol.timeout_ms = PPBPF_TIMEOUT_DEFAULT_MS;
}

void options_init(struct attach_args *a, const char *cmd)
{
	memset(a, 0, sizeof(*a));
	a->tlv_cap = -1;
	a->pin_dir = PPBPF_PIN_DIR;
	a->n_groups = 1;
	group_init(&a->groups[0]);
	if (!strcmp(cmd, "run")) {
		a->sweep_ms = 100;
		a->log_rate = 10;
	}
}

/* Split a comma list and hand each item to fn. Returns the first error message. */
static const char *each_item(const char *list, struct port_group *g,
			     const char *(*fn)(const char *item, struct port_group *g))
{
	char *copy = strdup(list), *save = NULL, *tok;
	const char *err = copy ? NULL : "out of memory";

	for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && !err; tok = strtok_r(NULL, ",", &save))
		err = fn(tok, g);
	free(copy);
	return err;
}

static const char *add_port(const char *item, struct port_group *g)
{
	unsigned long long v;

	if (parse_uint(item, 65535, &v) || v == 0)
		return "not a port 1..65535";
	if (g->n_ports == MAX_PORTS)
		return "too many ports";
	g->ports[g->n_ports++] = (__u16)v;
	return NULL;
}

static const char *add_trust(const char *item, struct port_group *g)
{
	if (g->n_trust == MAX_TRUST)
		return "too many CIDRs";
	return cidr_parse(item, &g->trust[g->n_trust++]) ? "not an address or CIDR" : NULL;
}

static const char *refuse_version(const char *item, struct port_group *g)
{
	if (!strcmp(item, "1") || !strcmp(item, "v1"))
		g->pol.flags &= ~PPBPF_PORT_NO_V1;
	else if (!strcmp(item, "2") || !strcmp(item, "v2"))
		g->pol.flags &= ~PPBPF_PORT_NO_V2;
	else
		return "must be 1, 2 or 1,2";
	return NULL;
}

/* port_option's answer for an option that is not about ports. */
static const char not_a_port_option[] = "not a port option";

/* One port option into the group g. Returns an error message, not_a_port_option, or NULL. */
static const char *port_option(int c, const char *arg, struct port_group *g)
{
	unsigned long long v;

	switch (c) {
	case 'p': return each_item(arg, g, add_port);
	case 't': return each_item(arg, g, add_trust);
	case 'r': g->pol.flags |= PPBPF_PORT_REWRITE_PEER; return NULL;
	case 'o': g->pol.flags |= PPBPF_PORT_OPTIONAL; return NULL;
	case OPT_MODE:
		if (!strcmp(arg, "required"))
			g->pol.flags &= ~PPBPF_PORT_OPTIONAL;
		else if (!strcmp(arg, "optional"))
			g->pol.flags |= PPBPF_PORT_OPTIONAL;
		else
			return "must be required or optional";
		return NULL;
	case OPT_UNTRUSTED:
		if (!strcmp(arg, "plain"))
			g->pol.flags &= ~PPBPF_PORT_REJECT_UNTRUSTED;
		else if (!strcmp(arg, "reject"))
			g->pol.flags |= PPBPF_PORT_REJECT_UNTRUSTED;
		else
			return "must be plain or reject";
		return NULL;
	case OPT_VERSIONS:
		g->pol.flags |= PPBPF_PORT_NO_V1 | PPBPF_PORT_NO_V2;
		return each_item(arg, g, refuse_version);
	case OPT_TIMEOUT:
		if (parse_uint(arg, 3600 * 1000, &v))
			return "must be 0..3600000 ms";
		g->pol.timeout_ms = (__u32)v;
		return NULL;
	case 'm':
		if (parse_uint(arg, 4096, &v) || v < PPBPF_MIN_LEN)
			return "must be 15..4096";
		g->pol.max_header = (__u32)v;
		return NULL;
	}
	return not_a_port_option;
}

/* One option of the whole attachment (or of `run`). */
static const char *global_option(int c, const char *arg, struct attach_args *a, bool run)
{
	unsigned long long v;

	switch (c) {
	case OPT_TLV_CAP:
		if (parse_uint(arg, PPBPF_TLV_MAX, &v))
			return "must be 0..1024";
		a->tlv_cap = (long)v;
		return NULL;
	/* Copies: a config file's line buffer is reused for the next line. */
	case 'c': a->cgroup = strdup(arg); return a->cgroup ? NULL : "out of memory";
	case 'd': a->pin_dir = strdup(arg); return a->pin_dir ? NULL : "out of memory";
	case OPT_TABLE_SIZE:
		if (parse_uint(arg, 1u << 24, &v) || v == 0)
			return "must be 1..16777216";
		a->table_size = v;
		return NULL;
	case 'v': a->verbose = true; return NULL;
	}
	if (!run)
		return "unknown option";
	switch (c) {
	case OPT_CONFIG: a->config = arg; return NULL;
	case OPT_KEEP: a->keep = true; return NULL;
	case OPT_SWEEP_MS:
		if (parse_uint(arg, 60000, &v) || v < 10)
			return "must be 10..60000 ms";
		a->sweep_ms = (unsigned int)v;
		return NULL;
	case OPT_LOG_RATE:
		if (parse_uint(arg, 100000, &v))
			return "must be 0..100000 lines per second";
		a->log_rate = (unsigned int)v;
		return NULL;
	}
	return "unknown option";
}

int options_parse(int argc, char **argv, struct attach_args *a, const char *cmd, const char *help)
{
	bool run = !strcmp(cmd, "run");
	const char *err;
	int c;

	optind = 0; /* GNU getopt: start over (config lines are parsed one after another) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "p:t:rom:c:d:vh", attach_opts, NULL)) != -1) {
		if (c == 'h' && help) {
			fputs(help, stdout);
			exit(EXIT_OK);
		}
		if (c == '?' || c == ':' || c == 'h')
			return usage_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
		err = port_option(c, optarg, &a->groups[a->n_groups - 1]);
		if (err == not_a_port_option)
			err = global_option(c, optarg, a, run);
		if (err)
			return optarg ? usage_error(cmd, "'%s': %s", optarg, err)
				      : usage_error(cmd, "'%s': %s", argv[optind - 1], err);
	}
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* Keys of a config line that take no value. */
static bool flag_key(const char *key)
{
	return !strcmp(key, "--rewrite-peer") || !strcmp(key, "--optional") || !strcmp(key, "--keep") ||
	       !strcmp(key, "--verbose");
}

/* "key [value] ..." words of a config line as "--key [value]" arguments. Returns argc or -1. */
static int line_to_argv(char *line, char **argv, int max, char *store, size_t cap)
{
	char *save = NULL, *tok;
	bool want_key = true;
	int argc = 1;
	size_t used = 0;

	argv[0] = "run";
	for (tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (argc + 1 >= max)
			return -1;
		if (want_key) { /* give it its dashes */
			int n = snprintf(store + used, cap - used, "--%s", tok);

			if (n < 0 || (size_t)n >= cap - used)
				return -1;
			argv[argc++] = store + used;
			used += (size_t)n + 1;
			want_key = flag_key(argv[argc - 1]);
		} else {
			argv[argc++] = tok;
			want_key = true;
		}
	}
	argv[argc] = NULL;
	return argc;
}

/* Does a config line set a port (and so start a policy group of its own)? */
static bool line_has_port(char **argv, int argc)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--port"))
			return true;
	return false;
}

int options_read_config(const char *path, struct attach_args *a)
{
	FILE *f = fopen(path, "r");
	char line[4096], store[4096], *argv[128];
	int lineno = 0, rc = 0;
	bool first_group = a->groups[0].n_ports == 0;

	if (!f) {
		fprintf(stderr, "ppbpf run: failed to open %s: %s\n", path, strerror(errno));
		return EXIT_FAIL;
	}
	while (!rc && fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#');
		int argc;

		lineno++;
		if (hash)
			*hash = '\0';
		argc = line_to_argv(line, argv, 128, store, sizeof(store));
		if (argc < 0) {
			fprintf(stderr, "ppbpf run: %s:%d: line too long\n", path, lineno);
			rc = EXIT_USAGE;
			break;
		}
		if (argc == 1)
			continue;
		if (line_has_port(argv, argc)) {
			if (!first_group) {
				if (a->n_groups == MAX_GROUPS) {
					fprintf(stderr, "ppbpf run: %s:%d: more than %d port lines\n", path, lineno,
						MAX_GROUPS);
					rc = EXIT_USAGE;
					break;
				}
				group_init(&a->groups[a->n_groups++]);
			}
			first_group = false;
		}
		rc = options_parse(argc, argv, a, "run", NULL);
		if (rc)
			fprintf(stderr, "ppbpf run: in %s, line %d\n", path, lineno);
	}
	fclose(f);
	return rc;
}

bool attached_to(const char *pin_dir, const char *cgroup_path)
{
	struct link_desc links[SLOT_MAX];
	char path[4096];

	loader_links(pin_dir, links);
	return links[SLOT_SOCKOPS].present &&
	       !cgroup_path_of_id(links[SLOT_SOCKOPS].cgroup_id, path, sizeof(path)) && !strcmp(path, cgroup_path);
}

/* Set the policy of every port of every group, and the settings. 0 or -errno. */
static int set_policy(const struct attach_args *a, const struct ppbpf_maps *m)
{
	int rc = 0;

	if (a->tlv_cap >= 0) {
		struct ppbpf_config cfg = { .tlv_cap = (__u32)a->tlv_cap };

		rc = policy_set_config(m, &cfg);
	}
	for (int g = 0; !rc && g < a->n_groups; g++) {
		const struct port_group *pg = &a->groups[g];

		for (int i = 0; !rc && i < pg->n_ports; i++)
			rc = policy_set_port(m, pg->ports[i], &pg->pol, pg->trust, pg->n_trust);
	}
	return rc;
}

int options_apply(const struct attach_args *a, const char *cmd, bool *fresh)
{
	struct ppbpf_maps m;
	char cgroup_path[4096];
	int rc;

	*fresh = false;
	rc = cgroup_resolve(a->cgroup, cgroup_path, sizeof(cgroup_path));
	if (rc) {
		fprintf(stderr, "ppbpf %s: failed to find the cgroup2 mount: %s\n", cmd, strerror(-rc));
		return EXIT_FAIL;
	}
	if (!loader_attached(a->pin_dir)) {
		if (loader_attach(cgroup_path, a->pin_dir, (__u32)a->table_size))
			return EXIT_FAIL;
		*fresh = true;
	} else if (a->cgroup && !attached_to(a->pin_dir, cgroup_path)) {
		fprintf(stderr, "ppbpf %s: %s holds an attachment to another cgroup; detach it first "
				"or use another --pin-dir\n", cmd, a->pin_dir);
		return EXIT_FAIL;
	}
	rc = loader_open_maps(a->pin_dir, &m);
	if (rc) {
		fprintf(stderr, "ppbpf %s: failed to open the maps in %s: %s\n", cmd, a->pin_dir, strerror(-rc));
		return EXIT_FAIL;
	}
	rc = set_policy(a, &m);
	loader_close_maps(&m);
	if (rc) {
		fprintf(stderr, "ppbpf %s: failed to set the policy: %s\n", cmd, strerror(-rc));
		if (*fresh)
			loader_detach(a->pin_dir);
		return EXIT_FAIL;
	}
	for (int g = 0; g < a->n_groups; g++)
		if (a->groups[g].n_ports && !a->groups[g].n_trust)
			fprintf(stderr, "ppbpf %s: port %u has no trust list: headers are honoured from any source\n",
				cmd, a->groups[g].ports[0]);
	return 0;
}
