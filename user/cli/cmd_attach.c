// SPDX-License-Identifier: MIT
/* `ppbpf attach` and `ppbpf detach`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "loader.h"
#include "policy.h"

/* Most ports and trusted blocks one attach takes. */
#define MAX_PORTS 64
#define MAX_TRUST 256

static const char attach_help[] =
	"Usage: ppbpf attach --port P[,P...] [--trust CIDR[,CIDR...]] [--rewrite-peer]\n"
	"                    [--optional] [--max-header BYTES] [--tlv-cap BYTES]\n"
	"                    [--cgroup PATH] [--pin-dir DIR] [--table-size N] [-v]\n"
	"\n"
	"Load ppbpf's programs, attach them to a cgroup, and set the policy of the\n"
	"given local ports. Connections accepted on those ports from trusted sources\n"
	"have their PROXY header parsed in the kernel; applications query it with\n"
	"getsockopt(SOL_PPBPF) (libppbpf: ppbpf_get, ppbpf_accept). The byte stream\n"
	"is never changed. Links and maps are pinned, so the programs stay after this\n"
	"command exits. Run again to change the policy of ports live.\n"
	"\n"
	"Options:\n"
	"  -p, --port P[,P...]      local ports that expect a PROXY header (required)\n"
	"  -t, --trust CIDR[,...]   sources whose headers are honoured on these ports;\n"
	"                           default: any source. Others stay plain connections\n"
	"  -r, --rewrite-peer       accept() and getpeername() return the original source\n"
	"  -o, --optional           trusted peers may send no header (a plain connection)\n"
	"  -m, --max-header BYTES   largest header accepted (default and limit 4096)\n"
	"      --tlv-cap BYTES      TLV bytes kept per socket (default 512, at most 1024)\n"
	"  -c, --cgroup PATH        cgroup to attach to; relative paths are under the cgroup2\n"
	"                           mount; default: its root (every service on the host)\n"
	"  -d, --pin-dir DIR        bpffs folder for links and maps (default " PPBPF_PIN_DIR ")\n"
	"      --table-size N       connection table capacity (default 65536; at first attach)\n"
	"  -v, --verbose            print libbpf's messages and verifier logs\n"
	"  -h, --help               show this help\n"
	"\n"
	"Examples:\n"
	"  ppbpf attach --port 8080 --trust 10.0.0.0/8,2001:db8::/32 --rewrite-peer\n"
	"  ppbpf attach --cgroup system.slice/nginx.service --port 443 --trust 192.0.2.10\n"
	"  bpftool map dump pinned " PPBPF_PIN_DIR "/conns\n";

static const char detach_help[] =
	"Usage: ppbpf detach [--cgroup PATH] [--pin-dir DIR]\n"
	"\n"
	"Detach ppbpf's programs and remove every link, map and pin it created.\n"
	"Nothing attached is not an error.\n"
	"\n"
	"Options:\n"
	"  -c, --cgroup PATH   only detach if attached to this cgroup\n"
	"  -d, --pin-dir DIR   bpffs folder of the attachment (default " PPBPF_PIN_DIR ")\n"
	"  -h, --help          show this help\n"
	"\n"
	"Examples:\n"
	"  ppbpf detach\n"
	"  ppbpf detach --pin-dir /sys/fs/bpf/ppbpf-test\n";

struct attach_args {
	__u16 ports[MAX_PORTS];
	int n_ports;
	struct cidr trust[MAX_TRUST];
	int n_trust;
	struct ppbpf_port_policy pol;
	long tlv_cap; /* -1: unchanged */
	const char *cgroup, *pin_dir;
	unsigned long long table_size;
	bool verbose;
};

/* Split a comma list and hand each item to fn. Returns the first error message. */
static const char *each_item(const char *list, struct attach_args *a,
			     const char *(*fn)(const char *item, struct attach_args *a))
{
	char *copy = strdup(list), *save = NULL, *tok;
	const char *err = copy ? NULL : "out of memory";

	for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && !err; tok = strtok_r(NULL, ",", &save))
		err = fn(tok, a);
	free(copy);
	return err;
}

static const char *add_port(const char *item, struct attach_args *a)
{
	unsigned long long v;

	if (parse_uint(item, 65535, &v) || v == 0)
		return "not a port 1..65535";
	if (a->n_ports == MAX_PORTS)
		return "too many ports";
	a->ports[a->n_ports++] = (__u16)v;
	return NULL;
}

static const char *add_trust(const char *item, struct attach_args *a)
{
	if (a->n_trust == MAX_TRUST)
		return "too many CIDRs";
	return cidr_parse(item, &a->trust[a->n_trust++]) ? "not an address or CIDR" : NULL;
}

static int parse_attach_args(int argc, char **argv, struct attach_args *a)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },      { "trust", required_argument, NULL, 't' },
		{ "rewrite-peer", no_argument, NULL, 'r' },     { "optional", no_argument, NULL, 'o' },
		{ "max-header", required_argument, NULL, 'm' }, { "tlv-cap", required_argument, NULL, 'T' },
		{ "cgroup", required_argument, NULL, 'c' },     { "pin-dir", required_argument, NULL, 'd' },
		{ "table-size", required_argument, NULL, 'S' }, { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },             { 0 },
	};
	unsigned long long v;
	const char *err = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "p:t:rom:c:d:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': err = each_item(optarg, a, add_port); break;
		case 't': err = each_item(optarg, a, add_trust); break;
		case 'r': a->pol.flags |= PPBPF_PORT_REWRITE_PEER; break;
		case 'o': a->pol.flags |= PPBPF_PORT_OPTIONAL; break;
		case 'm':
			if (parse_uint(optarg, 4096, &v) || v < PPBPF_MIN_LEN)
				err = "must be 15..4096";
			a->pol.max_header = (__u32)v;
			break;
		case 'T':
			if (parse_uint(optarg, PPBPF_TLV_MAX, &v))
				err = "must be 0..1024";
			a->tlv_cap = (long)v;
			break;
		case 'c': a->cgroup = optarg; break;
		case 'd': a->pin_dir = optarg; break;
		case 'S':
			if (parse_uint(optarg, 1u << 24, &v) || v == 0)
				err = "must be 1..16777216";
			a->table_size = v;
			break;
		case 'v': a->verbose = true; break;
		case 'h': fputs(attach_help, stdout); exit(EXIT_OK);
		default: return usage_error("attach", "unknown option");
		}
		if (err)
			return usage_error("attach", "'%s': %s", optarg, err);
	}
	if (optind < argc)
		return usage_error("attach", "unexpected argument '%s'", argv[optind]);
	if (!a->n_ports)
		return usage_error("attach", "--port is required");
	return 0;
}

/* Is the attachment in pin_dir on this cgroup? */
static bool attached_to(const char *pin_dir, const char *cgroup_path)
{
	struct link_desc links[SLOT_MAX];
	char path[4096];

	loader_links(pin_dir, links);
	return links[SLOT_SOCKOPS].present &&
	       !cgroup_path_of_id(links[SLOT_SOCKOPS].cgroup_id, path, sizeof(path)) && !strcmp(path, cgroup_path);
}

int cmd_attach(int argc, char **argv)
{
	struct attach_args a = { .tlv_cap = -1, .pin_dir = PPBPF_PIN_DIR };
	struct ppbpf_maps m = { -1, -1, -1, -1, -1, -1, -1, -1, -1 };
	char cgroup_path[4096];
	bool fresh = false;
	int rc;

	rc = parse_attach_args(argc, argv, &a);
	if (rc)
		return rc;
	loader_verbose(a.verbose);
	rc = cgroup_resolve(a.cgroup, cgroup_path, sizeof(cgroup_path));
	if (rc) {
		fprintf(stderr, "ppbpf attach: failed to find the cgroup2 mount: %s\n", strerror(-rc));
		return EXIT_FAIL;
	}
	if (!loader_attached(a.pin_dir)) {
		rc = loader_attach(cgroup_path, a.pin_dir, (__u32)a.table_size);
		if (rc)
			return EXIT_FAIL;
		fresh = true;
	} else if (a.cgroup && !attached_to(a.pin_dir, cgroup_path)) {
		fprintf(stderr, "ppbpf attach: %s holds an attachment to another cgroup; detach it first "
				"or use another --pin-dir\n", a.pin_dir);
		return EXIT_FAIL;
	}
	rc = loader_open_maps(a.pin_dir, &m);
	if (rc) {
		fprintf(stderr, "ppbpf attach: failed to open the maps in %s: %s\n", a.pin_dir, strerror(-rc));
		return EXIT_FAIL;
	}
	if (a.tlv_cap >= 0) {
		struct ppbpf_config cfg = { .tlv_cap = (__u32)a.tlv_cap };

		rc = policy_set_config(&m, &cfg);
	}
	for (int i = 0; !rc && i < a.n_ports; i++)
		rc = policy_set_port(&m, a.ports[i], &a.pol, a.trust, a.n_trust);
	loader_close_maps(&m);
	if (rc) {
		fprintf(stderr, "ppbpf attach: failed to set the policy: %s\n", strerror(-rc));
		if (fresh)
			loader_detach(a.pin_dir);
		return EXIT_FAIL;
	}
	if (!a.n_trust)
		fprintf(stderr, "ppbpf attach: no --trust: headers are honoured from any source on these ports\n");
	printf("ppbpf: %s %s (pins in %s); %d port(s) set\n", fresh ? "attached to" : "updated policy on",
	       cgroup_path, a.pin_dir, a.n_ports);
	return EXIT_OK;
}

int cmd_detach(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'c' },
		{ "pin-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *pin_dir = PPBPF_PIN_DIR, *cgroup = NULL;
	char cgroup_path[4096];
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cgroup = optarg; break;
		case 'd': pin_dir = optarg; break;
		case 'h': fputs(detach_help, stdout); return EXIT_OK;
		default: return usage_error("detach", "unknown option");
		}
	}
	if (optind < argc)
		return usage_error("detach", "unexpected argument '%s'", argv[optind]);
	loader_verbose(false);
	if (!loader_attached(pin_dir)) {
		rc = loader_detach(pin_dir); /* leftovers of an interrupted attach, if any */
		printf("ppbpf: nothing attached at %s\n", pin_dir);
		return rc < 0 ? EXIT_FAIL : EXIT_OK;
	}
	if (cgroup && (cgroup_resolve(cgroup, cgroup_path, sizeof(cgroup_path)) ||
		       !attached_to(pin_dir, cgroup_path))) {
		fprintf(stderr, "ppbpf detach: %s is not attached to %s\n", pin_dir, cgroup);
		return EXIT_FAIL;
	}
	rc = loader_detach(pin_dir);
	if (rc < 0) {
		fprintf(stderr, "ppbpf detach: failed to remove every pin in %s: %s\n", pin_dir, strerror(-rc));
		return EXIT_FAIL;
	}
	printf("ppbpf: detached; removed %d pins from %s\n", rc, pin_dir);
	return EXIT_OK;
}
