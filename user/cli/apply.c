// SPDX-License-Identifier: MIT
/* Applying the parsed options (options.c): attach if needed, then the policy into the maps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "loader.h"
#include "options.h"
#include "policy.h"
#include "selftest.h"
#include "tc.h"

bool attached_to(const char *pin_dir, const char *cgroup_path)
{
	struct link_desc links[SLOT_MAX];
	char path[4096];

	loader_links(pin_dir, links);
	return links[SLOT_SOCKOPS].present &&
	       !cgroup_path_of_id(links[SLOT_SOCKOPS].cgroup_id, path, sizeof(path)) && !strcmp(path, cgroup_path);
}

/* The table size is set at the first attach: say so if another one is asked for later. */
static void check_table_size(const struct attach_args *a, const struct ppbpf_maps *m, const char *cmd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (a->table_size && !bpf_obj_get_info_by_fd(m->conns, &info, &len) && info.max_entries != a->table_size)
		fprintf(stderr, "ppbpf %s: --table-size %llu not applied: the table was made for %u connections "
				"at the first attach (detach and attach again to change it)\n",
			cmd, a->table_size, info.max_entries);
}

/* Set the policy of every port of every group, and the settings. 0 or -errno; *port names a failing port. */
static int set_policy(const struct attach_args *a, const struct ppbpf_maps *m, bool exact, __u16 *port)
{
	static struct policy_port ports[MAX_GROUPS * MAX_PORTS];
	int n = 0, rc = 0;

	*port = 0;
	if (a->tlv_cap >= 0 || exact) { /* run: the config's, or the default */
		struct ppbpf_config cfg = { .tlv_cap = a->tlv_cap >= 0 ? (__u32)a->tlv_cap : PPBPF_TLV_CAP_DEFAULT };

		rc = policy_set_config(m, &cfg);
	}
	for (int g = 0; g < a->n_groups; g++)
		for (int i = 0; i < a->groups[g].n_ports; i++)
			ports[n++] = (struct policy_port){ .port = a->groups[g].ports[i], .pol = a->groups[g].pol,
							   .trust = a->groups[g].trust, .n_trust = a->groups[g].n_trust };
	return rc ? rc : policy_apply(m, ports, n, exact, port);
}

/* The sending side's policy of every group. 0 or -errno; *port names a failing port. */
static int set_send_policy(const struct attach_args *a, const struct ppbpf_maps *m, bool exact, __u16 *port)
{
	static struct send_port ports[MAX_GROUPS * MAX_PORTS];
	int n = 0;

	*port = 0;
	if (!a->n_sends && !exact)
		return 0;
	for (int g = 0; g < a->n_sends; g++)
		for (int i = 0; i < a->sends[g].n_ports; i++)
		{
			ports[n] = (struct send_port){ .port = a->sends[g].ports[i], .pol = a->sends[g].tlvs,
						       .to = a->sends[g].to, .n_to = a->sends[g].n_to };
			ports[n++].pol.version = a->sends[g].versions[i];
		}
	return policy_apply_send(m, ports, n, exact, port);
}

bool any_transparent(const struct attach_args *a)
{
	for (int g = 0; g < a->n_groups; g++)
		if (a->groups[g].pol.flags & PPBPF_PORT_TRANSPARENT)
			return true;
	return false;
}

/* Server-side TCP Fast Open is on (net.ipv4.tcp_fastopen has 0x2)? */
static bool fastopen_server_on(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_fastopen", "r");
	int v = 0;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v & 2;
}

/* Transparent ports: the tc programs on the interfaces. 0 or -errno after saying why. */
static int attach_tc(const struct attach_args *a, const char *cmd)
{
	int n = tc_attach(a->pin_dir, a->devs, false);

	if (n < 0)
		return n;
	if (!n) {
		fprintf(stderr, "ppbpf %s: no interface to attach transparent mode to\n", cmd);
		return -ENODEV;
	}
	if (fastopen_server_on())
		fprintf(stderr, "ppbpf %s: server-side TCP Fast Open is on (net.ipv4.tcp_fastopen): SYNs with data "
				"to transparent ports are refused and counted (transparent_fastopen_refused)\n", cmd);
	return 0;
}

int options_apply(const struct attach_args *a, const char *cmd, bool exact, bool *fresh)
{
	struct ppbpf_maps m;
	char cgroup_path[4096];
	__u16 port;
	int rc, lock;

	*fresh = false;
	rc = cgroup_resolve(a->cgroup[0] ? a->cgroup : NULL, cgroup_path, sizeof(cgroup_path));
	if (rc) {
		fprintf(stderr, "ppbpf %s: failed to find the cgroup2 mount: %s\n", cmd, strerror(-rc));
		return EXIT_FAIL;
	}
	if (loader_pin_dir_ready(a->pin_dir))
		return EXIT_FAIL;
	if (any_transparent(a) && !selftest_passed_here()) {
		/* the first time on a kernel, before anything changes: a mode that cannot keep streams intact is refused */
		fprintf(stderr, "ppbpf %s: transparent mode, the first time on this kernel: running `ppbpf selftest`\n",
			cmd);
		if (selftest_run(32, 12, false)) {
			fprintf(stderr, "ppbpf %s: transparent mode refused on this kernel (nothing changed); "
					"`ppbpf selftest -v` says more\n", cmd);
			return EXIT_FAIL;
		}
	}
	lock = loader_lock(a->pin_dir);
	if (lock < 0)
		return EXIT_FAIL;
	if (!loader_attached(a->pin_dir)) {
		if (loader_attach(cgroup_path, a->pin_dir, (__u32)a->table_size)) {
			loader_unlock(lock);
			return EXIT_FAIL;
		}
		*fresh = true;
	} else if (a->cgroup[0] && !attached_to(a->pin_dir, cgroup_path)) {
		fprintf(stderr, "ppbpf %s: %s holds an attachment to another cgroup; detach it first "
				"or use another --pin-dir\n", cmd, a->pin_dir);
		loader_unlock(lock);
		return EXIT_FAIL;
	}
	rc = loader_open_maps(a->pin_dir, &m);
	if (rc) {
		fprintf(stderr, "ppbpf %s: failed to open the maps in %s: %s\n", cmd, a->pin_dir, strerror(-rc));
		goto undo;
	}
	if (!*fresh)
		check_table_size(a, &m, cmd);
	rc = set_policy(a, &m, exact, &port);
	if (!rc)
		rc = set_send_policy(a, &m, exact, &port);
	loader_close_maps(&m);
	if (!rc && any_transparent(a))
		rc = attach_tc(a, cmd);
	if (rc) {
		if (port)
			fprintf(stderr, "ppbpf %s: failed to set the policy of port %u: %s%s\n", cmd, port, strerror(-rc),
				rc == -ENOSPC || rc == -E2BIG ? " (a map of the kernel side is full)" : "");
		else
			fprintf(stderr, "ppbpf %s: failed to set the policy: %s\n", cmd, strerror(-rc));
		goto undo;
	}
	loader_unlock(lock);
	for (int g = 0; g < a->n_groups; g++)
		if (!a->groups[g].n_trust)
			fprintf(stderr, "ppbpf %s: port %u has no trust list: headers are honoured from any source\n",
				cmd, a->groups[g].ports[0]);
	return 0;
undo:
	if (*fresh)
		loader_detach(a->pin_dir); /* a failed attach leaves nothing behind */
	loader_unlock(lock);
	return EXIT_FAIL;
}
