// SPDX-License-Identifier: MIT
/* `ppbpf attach` and `ppbpf detach`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "loader.h"
#include "options.h"
#include "policy.h"
#include "tc.h"
#include "tc.h"

static const char attach_usage[] =
	"Usage: ppbpf attach --port P[,P...] [--trust CIDR[,...]] [--untrusted plain|reject]\n"
	"                    [--mode required|optional] [--versions 1|2|1,2] [--timeout MS]\n"
	"                    [--max-header BYTES] [--rewrite-peer] [--transparent]\n"
	"                    [--send P[:v1|v2][,...] [--send-to CIDR[,...]]] [--tlv-cap BYTES]\n"
	"                    [--cgroup PATH] [--pin-dir DIR] [--dev IF[,IF...]] [--table-size N] [-v]\n"
	"\n"
	"Load ppbpf's programs, attach them to a cgroup, and set the policy of the\n"
	"given local ports. Connections accepted on those ports from trusted sources\n"
	"have their PROXY header parsed in the kernel; applications query it with\n"
	"getsockopt(SOL_PPBPF) (libppbpf: ppbpf_get, ppbpf_accept). The byte stream\n"
	"is never changed, and no byte reaches the application before the header is\n"
	"judged. With --transparent the kernel takes the header out of the stream\n"
	"instead (tc programs on this network namespace's interfaces), for servers\n"
	"that cannot be changed: they read the payload only, and accept() and\n"
	"getpeername() return the original client; the first time on a kernel,\n"
	"`ppbpf selftest` runs first. Rejected connections get none of their bytes\n"
	"delivered; `ppbpf run` resets them and enforces the timeout. Links and maps\n"
	"are pinned, so the programs stay after this command exits. Run again to\n"
	"change the policy live.\n"
	"\n"
	"The sending side: with --send, connections that processes of the cgroup\n"
	"open to those remote ports (and --send-to destinations) start with a PROXY\n"
	"header the kernel writes before their first byte, carrying the socket's own\n"
	"addresses; the application's bytes follow unchanged. --port or --send (or\n"
	"both) must be given.\n"
	"\n";

static const char attach_more[] =
	"\n"
	"Examples:\n"
	"  ppbpf attach --port 8080 --trust 10.0.0.0/8,2001:db8::/32 --rewrite-peer\n"
	"  ppbpf attach --cgroup system.slice/nginx.service --port 443 --trust 192.0.2.10 \\\n"
	"      --untrusted reject --versions 2 --timeout 1000\n"
	"  ppbpf attach --cgroup system.slice/redis-server.service --port 6379 \\\n"
	"      --trust 10.0.0.0/8 --transparent\n"
	"  ppbpf attach --cgroup system.slice/relay.service --send 8443:v2,25:v1 --send-to 10.1.0.0/16\n"
	"  bpftool map dump pinned " PPBPF_PIN_DIR "/conns\n";

static const char detach_usage[] =
	"Usage: ppbpf detach [--cgroup PATH] [--pin-dir DIR] [--port P[,P...] | --send P[,P...]]\n"
	"\n"
	"Detach ppbpf's programs and remove every link, map and pin it created.\n"
	"Each pin is checked to be ppbpf's first: anything else in the folder (another\n"
	"tool's pins) stays, and so does the folder. Nothing attached is not an error.\n"
	"Transparent mode's connections are reset first (SOCK_DESTROY): a shift that\n"
	"stopped mid-stream would corrupt them. If one cannot be reset, nothing is\n"
	"removed. Run it in the network namespace the attachment's tc programs are in.\n"
	"\n"
	"With --port, only those ports lose their policy (the policy entry, the port\n"
	"bits and every trusted source; a transparent port's connections are reset\n"
	"first): new connections to them are left alone, and\n"
	"the programs stay attached for the other ports. A `ppbpf run` serving the\n"
	"folder puts back what its config says at its next reload (SIGHUP): remove the\n"
	"port from the config instead.\n"
	"\n"
	"With --send, only those remote ports lose their outbound policy: connections\n"
	"opened from now on get no header; those already open keep what they had.\n"
	"\n";

static const char detach_more[] =
	"\n"
	"Examples:\n"
	"  ppbpf detach\n"
	"  ppbpf detach --port 8080\n"
	"  ppbpf detach --send 8443\n"
	"  ppbpf detach --pin-dir /sys/fs/bpf/ppbpf-test\n";

int cmd_attach(int argc, char **argv)
{
	static struct attach_args a; /* large: the trust lists */
	char cgroup_path[4096];
	bool fresh;
	int rc, ports = 0, sent = 0;

	options_init(&a, "attach");
	rc = options_parse(argc, argv, &a, "attach", attach_usage, attach_more);
	if (rc)
		return rc;
	if (!a.n_groups && !a.n_sends)
		return usage_error("attach", "--port or --send is required");
	if (a.check) {
		options_print_json(&a, stdout);
		return EXIT_OK;
	}
	loader_verbose(a.verbose);
	rc = options_apply(&a, "attach", false, &fresh);
	if (rc)
		return rc;
	for (int g = 0; g < a.n_groups; g++)
		ports += a.groups[g].n_ports;
	for (int g = 0; g < a.n_sends; g++)
		sent += a.sends[g].n_ports;
	if (cgroup_resolve(a.cgroup[0] ? a.cgroup : NULL, cgroup_path, sizeof(cgroup_path)))
		snprintf(cgroup_path, sizeof(cgroup_path), "%s", a.cgroup[0] ? a.cgroup : "the cgroup2 root");
	printf("ppbpf: %s %s (pins in %s); %d port(s) set", fresh ? "attached to" : "updated policy on", cgroup_path,
	       a.pin_dir, ports);
	if (sent)
		printf(", %d remote port(s) sent to", sent);
	putchar('\n');
	return EXIT_OK;
}

/* `detach --port`: those ports lose their policy; the attachment stays. */
/* An attachment's maps, locked, for a policy change of `detach`: the lock, or -1 after saying why. */
static int open_for_detach(const char *pin_dir, struct ppbpf_maps *m)
{
	int lock, rc;

	if (!loader_attached(pin_dir)) {
		fprintf(stderr, "ppbpf detach: nothing attached at %s\n", pin_dir);
		return -1;
	}
	lock = loader_lock(pin_dir);
	if (lock < 0)
		return -1;
	rc = loader_open_maps(pin_dir, m);
	if (rc) {
		fprintf(stderr, "ppbpf detach: failed to open the maps in %s: %s\n", pin_dir, strerror(-rc));
		loader_unlock(lock);
		return -1;
	}
	return lock;
}

static int detach_ports(const char *pin_dir, const __u16 *ports, int n)
{
	struct ppbpf_maps m;
	int lock = open_for_detach(pin_dir, &m), rc;

	if (lock < 0)
		return EXIT_FAIL;
	rc = policy_remove_ports(&m, ports, n);
	/* transparent ports: no new flow now; the live ones are reset before tc stops shifting the port */
	for (int i = 0; rc >= 0 && i < n; i++)
		if (!flows_reset(pin_dir, ports[i]))
			policy_unshift_port(&m, ports[i]);
		else
			fprintf(stderr, "ppbpf detach: port %u keeps its shift for the connections above\n", ports[i]);
	loader_close_maps(&m);
	loader_unlock(lock);
	if (rc < 0) {
		fprintf(stderr, "ppbpf detach: failed to remove the policy of the ports: %s\n", strerror(-rc));
		return EXIT_FAIL;
	}
	printf("ppbpf: removed the policy of %d port(s) in %s (%d had one); the programs stay attached\n", n, pin_dir,
	       rc);
	return EXIT_OK;
}

/* `detach --send`: those remote ports lose their outbound policy; the attachment stays. */
static int detach_send_ports(const char *pin_dir, const __u16 *ports, int n)
{
	struct ppbpf_maps m;
	int lock = open_for_detach(pin_dir, &m), rc;

	if (lock < 0)
		return EXIT_FAIL;
	rc = policy_remove_send_ports(&m, ports, n);
	loader_close_maps(&m);
	loader_unlock(lock);
	if (rc < 0) {
		fprintf(stderr, "ppbpf detach: failed to remove the outbound policy of the ports: %s\n", strerror(-rc));
		return EXIT_FAIL;
	}
	printf("ppbpf: removed the outbound policy of %d remote port(s) in %s (%d had one); the programs stay "
	       "attached\n", n, pin_dir, rc);
	return EXIT_OK;
}

/* What detach is told. */
struct detach_args {
	const char *pin_dir, *cgroup, *port_list, *send_list;
};

static const struct cli_option detach_options[] = {
	{ .name = "cgroup", .val = 'c', .metavar = "PATH", .help = "only detach if attached to this cgroup" },
	PIN_DIR_OPTION,
	{ .name = "port", .val = 'p', .metavar = "P[,...]", .help = "remove the policy of these ports only" },
	{ .name = "send", .val = 's', .metavar = "P[,...]",
	  .help = "remove the outbound policy of these remote ports only" },
	CLI_HELP_OPTION,
};

static int detach_option(void *ctx, const struct cli_option *o, const char *arg)
{
	struct detach_args *d = ctx;

	switch (o->val) {
	case 'c': d->cgroup = arg; break;
	case 'd': d->pin_dir = arg; break;
	case 'p':
		if (d->port_list)
			return usage_error("detach", "'--port' given twice");
		d->port_list = arg;
		break;
	case 's':
		if (d->send_list)
			return usage_error("detach", "'--send' given twice");
		d->send_list = arg;
		break;
	}
	return 0;
}

static const struct cli_command detach_command = {
	.name = "detach", .opts = detach_options, .n_opts = ARRAY_SIZE(detach_options),
	.usage = detach_usage, .more = detach_more, .apply = detach_option,
};

int cmd_detach(int argc, char **argv)
{
	static struct attach_args ports; /* the --port list, parsed as attach parses it */
	struct detach_args d = { .pin_dir = PPBPF_PIN_DIR };
	char cgroup_path[4096];
	int rc, lock;

	rc = cli_parse(&detach_command, argc, argv, &d);
	if (rc)
		return rc;
	if (!*d.pin_dir || d.pin_dir[0] != '/')
		return usage_error("detach", "--pin-dir must be an absolute path");
	loader_verbose(false);
	if (d.cgroup && loader_attached(d.pin_dir) &&
	    (cgroup_resolve(d.cgroup, cgroup_path, sizeof(cgroup_path)) || !attached_to(d.pin_dir, cgroup_path))) {
		fprintf(stderr, "ppbpf detach: %s is not attached to %s\n", d.pin_dir, d.cgroup);
		return EXIT_FAIL;
	}
	if (d.port_list && d.send_list)
		return usage_error("detach", "--port and --send: one at a time");
	if (d.port_list) {
		char *args[] = { "detach", "--port", (char *)d.port_list, NULL };

		options_init(&ports, "attach");
		rc = options_parse(3, args, &ports, "detach", detach_usage, detach_more);
		if (rc)
			return rc;
		return detach_ports(d.pin_dir, ports.groups[0].ports, ports.groups[0].n_ports);
	}
	if (d.send_list) {
		char *args[] = { "detach", "--send", (char *)d.send_list, NULL };

		options_init(&ports, "attach");
		rc = options_parse(3, args, &ports, "detach", detach_usage, detach_more);
		if (rc)
			return rc;
		return detach_send_ports(d.pin_dir, ports.sends[0].ports, ports.sends[0].n_ports);
	}
	if (access(d.pin_dir, F_OK)) {
		printf("ppbpf: nothing attached at %s\n", d.pin_dir);
		return EXIT_OK;
	}
	lock = loader_lock(d.pin_dir);
	if (lock < 0)
		return EXIT_FAIL;
	if (!loader_attached(d.pin_dir)) {
		rc = loader_detach(d.pin_dir); /* leftovers of an interrupted attach, if any */
		loader_unlock(lock);
		printf("ppbpf: nothing attached at %s%s\n", d.pin_dir, rc > 0 ? " (removed what an interrupted attach left)" : "");
		return rc < 0 ? EXIT_FAIL : EXIT_OK;
	}
	rc = loader_detach(d.pin_dir);
	loader_unlock(lock);
	if (rc < 0) {
		fprintf(stderr, "ppbpf detach: failed to remove every pin in %s: %s\n", d.pin_dir, strerror(-rc));
		return EXIT_FAIL;
	}
	printf("ppbpf: detached; removed %d pins from %s\n", rc, d.pin_dir);
	return EXIT_OK;
}
