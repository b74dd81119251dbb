// SPDX-License-Identifier: MIT
/* `ppbpf status` and `ppbpf list`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "counters.h"
#include "features.h"
#include "json.h"
#include "loader.h"
#include "options.h"
#include "policy.h"
#include "tc.h"

static const char status_usage[] =
	"Usage: ppbpf status [--pin-dir DIR] [--json]\n"
	"\n"
	"Show what is attached where, the policy of each port, the number of tracked\n"
	"connections, the counters, and what the running kernel lacks of the features\n"
	"ppbpf uses (one line each; see the README's kernel table). Works unattached too.\n"
	"\n";

static const char status_more[] =
	"\n"
	"Examples:\n"
	"  ppbpf status\n"
	"  ppbpf status --json | jq .counters\n";





/* What status and list are told. */
struct view_args {
	const char *pin_dir;
	bool json;
};

static const struct cli_option status_options[] = {
	PIN_DIR_OPTION,
	{ .name = "json", .val = 'j', .help = "one JSON object instead of text" },
	CLI_HELP_OPTION,
};


static int view_option(void *ctx, const struct cli_option *o, const char *arg)
{
	struct view_args *v = ctx;

	if (o->val == 'd')
		v->pin_dir = arg;
	else
		v->json = true;
	return 0;
}

static const struct cli_command status_command = {
	.name = "status", .opts = status_options, .n_opts = ARRAY_SIZE(status_options),
	.usage = status_usage, .more = status_more, .apply = view_option,
};


/* The ports with a policy, sorted. Returns the count. */
static int policy_ports(int fd, __u16 *out, int max)
{
	__u16 key, next;
	void *prev = NULL;
	int n = 0;

	while (n < max && !bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		out[n++] = key;
	}
	for (int i = 1; i < n; i++) /* insertion sort: a handful of ports */
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			__u16 t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* What this kernel lacks, one line each (none: one line saying it has everything). */
static void print_kernel_text(const struct kernel_report *kr)
{
	if (!kr->n_lacks)
		printf("kernel: %s, with every feature ppbpf uses\n", kr->release);
	else
		features_report(kr, "kernel", stdout);
}

static void json_kernel(struct json *j, const struct kernel_report *kr)
{
	json_key(j, "kernel");
	json_obj_begin(j);
	json_kv_str(j, "release", kr->release);
	json_key(j, "supported");
	json_bool(j, !kr->required_missing);
	json_key(j, "lacks");
	json_arr_begin(j);
	for (int i = 0; i < kr->n_lacks; i++) {
		const struct feature *f = kr->lacks[i];

		json_obj_begin(j);
		json_kv_str(j, "feature", f->key);
		json_kv_str(j, "name", f->name);
		json_kv_str(j, "since", f->since);
		json_key(j, "required");
		json_bool(j, !f->without);
		if (f->without)
			json_kv_str(j, "instead", f->without);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
}

static void print_unattached(const char *pin_dir, const struct kernel_report *kr, bool json)
{
	struct json j;

	if (!json) {
		printf("not attached (no pins in %s)\n", pin_dir);
		print_kernel_text(kr);
		return;
	}
	json_init(&j, stdout);
	json_obj_begin(&j);
	json_key(&j, "attached");
	json_bool(&j, false);
	json_kv_str(&j, "pin_dir", pin_dir);
	json_kernel(&j, kr);
	json_obj_end(&j);
	json_end(&j);
}

static void print_status_text(const char *cgroup, const char *pin_dir, const struct link_desc *links,
			      const struct ppbpf_maps *m, const __u64 *cnt, long conns, long pending, __u32 tlv_cap,
			      const struct kernel_report *kr)
{
	__u16 ports[1024];
	int n = policy_ports(m->ports, ports, 1024);

	printf("attached to %s (pins in %s)\n", cgroup, pin_dir);
	print_kernel_text(kr);
	for (int s = 0; s < SLOT_MAX; s++)
		printf("  %-20s prog %-6u link %u%s\n", links[s].pin + 5, links[s].prog_id, links[s].link_id,
		       links[s].present ? "" : "  MISSING");
	printf("ports:\n");
	for (int i = 0; i < n; i++) {
		struct ppbpf_port_policy pol = {};
		static struct cidr trust[MAX_TRUST];
		int nt = policy_trust_of(m, ports[i], trust, MAX_TRUST);

		bpf_map_lookup_elem(m->ports, &ports[i], &pol);
		printf("  %-5u mode %s untrusted %s versions %s timeout %ums max-header %u%s%s", ports[i],
		       pol.flags & PPBPF_PORT_OPTIONAL ? "optional" : "required",
		       pol.flags & PPBPF_PORT_REJECT_UNTRUSTED ? "reject" : "plain", versions_of(pol.flags),
		       pol.timeout_ms, pol.max_header ? pol.max_header : 4096,
		       pol.flags & PPBPF_PORT_REWRITE_PEER ? " rewrite-peer" : "",
		       pol.flags & PPBPF_PORT_TRANSPARENT ? " transparent" : "");
		if (pol.flags & PPBPF_PORT_LOCAL_UID)
			printf(" local-uid %u", pol.local_uid);
		printf(" trust");
		for (int t = 0; t < nt; t++) {
			char txt[CIDR_STRLEN];

			cidr_format(&trust[t], txt, sizeof(txt));
			printf("%s %s", t ? "," : "", txt);
		}
		printf("\n");
	}
	{
		char devs[1024];
		int n_tc = tc_attached(pin_dir, devs, sizeof(devs));

		if (n_tc > 0)
			printf("transparent mode at tc on: %s\n", devs);
	}
	n = policy_ports(m->send_ports, ports, 1024);
	if (n)
		printf("sending side (remote ports whose connections get a header):\n");
	for (int i = 0; i < n; i++) {
		struct ppbpf_send_policy pol = {};
		static struct cidr to[MAX_TRUST];
		int nt = policy_send_to_of(m, ports[i], to, MAX_TRUST);

		bpf_map_lookup_elem(m->send_ports, &ports[i], &pol);
		printf("  %-5u v%u%s%s%s%.*s%s%.*s to", ports[i], pol.version, pol.flags & PPBPF_SEND_CRC32C ? " crc32c" : "",
		       pol.flags & PPBPF_SEND_UNIQUE_ID ? " unique-id" : "", pol.authority_len ? " authority=" : "",
		       pol.authority_len, (const char *)pol.authority, pol.alpn_len ? " alpn=" : "", pol.alpn_len,
		       (const char *)pol.alpn);
		for (int t = 0; t < nt; t++) {
			char txt[CIDR_STRLEN];

			cidr_format(&to[t], txt, sizeof(txt));
			printf("%s %s", t ? "," : "", txt);
		}
		printf("\n");
	}
	printf("tlv cap: %u bytes\nconnections: %ld in the table, %ld with a pending header\n", tlv_cap, conns, pending);
	if (tracer_pid(m->trace_ctl))
		printf("trace: pid %u reads live events (ppbpf trace)\n", tracer_pid(m->trace_ctl));
	else
		printf("trace: off\n");
	printf("counters:\n");
	for (int k = 0; k < PPBPF_CNT_MAX; k++)
		printf("  %-19s %llu\n", counter_names[k], (unsigned long long)cnt[k]);
}

static void print_status_json(const char *cgroup, const char *pin_dir, const struct link_desc *links,
			      const struct ppbpf_maps *m, const __u64 *cnt, long conns, long pending, __u32 tlv_cap,
			      const struct kernel_report *kr)
{
	__u16 ports[1024];
	int n = policy_ports(m->ports, ports, 1024);
	struct json j;

	json_init(&j, stdout);
	json_obj_begin(&j);
	json_key(&j, "attached");
	json_bool(&j, true);
	json_kv_str(&j, "cgroup", cgroup);
	json_kv_str(&j, "pin_dir", pin_dir);
	json_kernel(&j, kr);
	json_key(&j, "programs");
	json_arr_begin(&j);
	for (int s = 0; s < SLOT_MAX; s++) {
		json_obj_begin(&j);
		json_kv_str(&j, "name", links[s].pin + 5);
		json_kv_int(&j, "prog_id", links[s].prog_id);
		json_kv_int(&j, "link_id", links[s].link_id);
		json_obj_end(&j);
	}
	json_arr_end(&j);
	json_key(&j, "ports");
	json_arr_begin(&j);
	for (int i = 0; i < n; i++) {
		struct ppbpf_port_policy pol = {};
		static struct cidr trust[MAX_TRUST];
		int nt = policy_trust_of(m, ports[i], trust, MAX_TRUST);

		bpf_map_lookup_elem(m->ports, &ports[i], &pol);
		json_obj_begin(&j);
		json_kv_int(&j, "port", ports[i]);
		json_key(&j, "optional");
		json_bool(&j, pol.flags & PPBPF_PORT_OPTIONAL);
		json_port_policy(&j, &pol);
		json_key(&j, "trust");
		json_arr_begin(&j);
		for (int t = 0; t < nt; t++) {
			char txt[CIDR_STRLEN];

			cidr_format(&trust[t], txt, sizeof(txt));
			json_str(&j, txt);
		}
		json_arr_end(&j);
		json_obj_end(&j);
	}
	json_arr_end(&j);
	{
		char devs[1024];

		tc_attached(pin_dir, devs, sizeof(devs));
		json_kv_str(&j, "tc", devs);
	}
	n = policy_ports(m->send_ports, ports, 1024);
	json_key(&j, "send");
	json_arr_begin(&j);
	for (int i = 0; i < n; i++) {
		struct ppbpf_send_policy pol = {};
		static struct cidr to[MAX_TRUST];
		int nt = policy_send_to_of(m, ports[i], to, MAX_TRUST);

		bpf_map_lookup_elem(m->send_ports, &ports[i], &pol);
		json_send_policy(&j, ports[i], &pol, to, nt);
	}
	json_arr_end(&j);
	json_kv_int(&j, "tlv_cap", tlv_cap);
	json_kv_int(&j, "connections", conns);
	json_kv_int(&j, "pending", pending);
	json_kv_int(&j, "tracer_pid", tracer_pid(m->trace_ctl));
	json_key(&j, "counters");
	json_obj_begin(&j);
	for (int k = 0; k < PPBPF_CNT_MAX; k++)
		json_kv_int(&j, counter_names[k], (long long)cnt[k]);
	json_obj_end(&j);
	json_obj_end(&j);
	json_end(&j);
}

int cmd_status(int argc, char **argv)
{
	struct view_args v = { .pin_dir = PPBPF_PIN_DIR };
	struct link_desc links[SLOT_MAX];
	struct ppbpf_maps m;
	struct ppbpf_config cfg = { .tlv_cap = PPBPF_TLV_CAP_DEFAULT };
	__u64 cnt[PPBPF_CNT_MAX];
	char cgroup[4096] = "?";
	struct kernel_report kr;
	__u32 zero = 0;
	long pending;
	int rc = cli_parse(&status_command, argc, argv, &v);

	if (rc)
		return rc;
	loader_verbose(false);
	features_probe(&kr);
	if (!loader_attached(v.pin_dir) || loader_open_maps(v.pin_dir, &m)) {
		print_unattached(v.pin_dir, &kr, v.json);
		return EXIT_OK;
	}
	loader_links(v.pin_dir, links);
	cgroup_path_of_id(links[SLOT_SOCKOPS].cgroup_id, cgroup, sizeof(cgroup));
	read_counters(m.stats, cnt);
	bpf_map_lookup_elem(m.settings, &zero, &cfg);
	pending = count_entries(m.pending) + count_entries(m.pending_small); /* long and short headers */
	if (v.json)
		print_status_json(cgroup, v.pin_dir, links, &m, cnt, count_entries(m.conns), pending, cfg.tlv_cap, &kr);
	else
		print_status_text(cgroup, v.pin_dir, links, &m, cnt, count_entries(m.conns), pending, cfg.tlv_cap, &kr);
	loader_close_maps(&m);
	return EXIT_OK;
}


