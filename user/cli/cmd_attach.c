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
#include "options.h"

static const char attach_help[] =
	"Usage: ppbpf attach --port P[,P...] [--trust CIDR[,...]] [--untrusted plain|reject]\n"
	"                    [--mode required|optional] [--versions 1|2|1,2] [--timeout MS]\n"
	"                    [--max-header BYTES] [--rewrite-peer] [--tlv-cap BYTES]\n"
	"                    [--cgroup PATH] [--pin-dir DIR] [--table-size N] [-v]\n"
	"\n"
	"Load ppbpf's programs, attach them to a cgroup, and set the policy of the\n"
	"given local ports. Connections accepted on those ports from trusted sources\n"
	"have their PROXY header parsed in the kernel; applications query it with\n"
	"getsockopt(SOL_PPBPF) (libppbpf: ppbpf_get, ppbpf_accept). The byte stream\n"
	"is never changed, and no byte reaches the application before the header is\n"
	"judged. Rejected connections get none of their bytes delivered; `ppbpf run`\n"
	"resets them and enforces the timeout. Links and maps are pinned, so the\n"
	"programs stay after this command exits. Run again to change the policy live.\n"
	"\n"
	POLICY_OPTIONS_HELP
	"\n"
	"Examples:\n"
	"  ppbpf attach --port 8080 --trust 10.0.0.0/8,2001:db8::/32 --rewrite-peer\n"
	"  ppbpf attach --cgroup system.slice/nginx.service --port 443 --trust 192.0.2.10 \\\n"
	"      --untrusted reject --versions 2 --timeout 1000\n"
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

int cmd_attach(int argc, char **argv)
{
	static struct attach_args a; /* large: the trust lists */
	char cgroup_path[4096];
	bool fresh;
	int rc, ports = 0;

	options_init(&a, "attach");
	rc = options_parse(argc, argv, &a, "attach", attach_help);
	if (rc)
		return rc;
	if (!a.groups[0].n_ports)
		return usage_error("attach", "--port is required");
	loader_verbose(a.verbose);
	rc = options_apply(&a, "attach", &fresh);
	if (rc)
		return rc;
	for (int g = 0; g < a.n_groups; g++)
		ports += a.groups[g].n_ports;
	if (cgroup_resolve(a.cgroup, cgroup_path, sizeof(cgroup_path)))
		snprintf(cgroup_path, sizeof(cgroup_path), "%s", a.cgroup ? a.cgroup : "the cgroup2 root");
	printf("ppbpf: %s %s (pins in %s); %d port(s) set\n", fresh ? "attached to" : "updated policy on",
	       cgroup_path, a.pin_dir, ports);
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
