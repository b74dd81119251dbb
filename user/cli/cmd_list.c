// SPDX-License-Identifier: MIT
/* `ppbpf list`: the connection table, filtered, once or every few seconds. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <ppbpf/ppbpf.h>
#include "cidr.h"
#include "cli.h"
#include "json.h"
#include "loader.h"
#include "options.h"

static const char list_usage[] =
	"Usage: ppbpf list [--pin-dir DIR] [--json] [--port P] [--src CIDR] [--state S] [--watch] [--interval S]\n"
	"\n"
	"List tracked connections: socket cookie, local address, peer (the balancer),\n"
	"original source and destination from the header, version, state, age, and\n"
	"the TLV types it carried. The filters combine (all must match).\n"
	"\n";

static const char list_more[] =
	"\n"
	"--watch prints the list again every --interval seconds (default 1) until\n"
	"interrupted, each time after a line with the time (with --json: one array\n"
	"per line, no time).\n"
	"\n"
	"Examples:\n"
	"  ppbpf list\n"
	"  ppbpf list --state pending --port 8443\n"
	"  ppbpf list --src 203.0.113.0/24 --json | jq '.[].src'\n"
	"  ppbpf list --state error --watch --interval 2\n";

static const struct cli_option list_options[] = {
	PIN_DIR_OPTION,
	{ .name = "json", .val = 'j', .help = "a JSON array instead of a table" },
	{ .name = "port", .val = 'p', .metavar = "P", .help = "connections to local port P" },
	{ .name = "src", .val = 's', .metavar = "CIDR", .help = "connections whose original source is in CIDR" },
	{ .name = "state", .val = 'S', .metavar = "S", .help = "connections in state S: pending, done, error or plain" },
	{ .name = "watch", .val = 'w', .help = "print the list again and again, until interrupted" },
	{ .name = "interval", .val = 'i', .metavar = "S", .help = "seconds between two lists of --watch (default 1)" },
	CLI_HELP_OPTION,
};

struct list_args {
	const char *pin_dir;
	bool json;
	int port;         /* -1: any */
	bool have_src;
	struct cidr src;
	int state;        /* -1: any */
	bool watch;       /* again and again */
	double interval_s; /* between two lists */
};

static int list_option(void *ctx, const struct cli_option *o, const char *arg)
{
	struct list_args *a = ctx;
	char *end;

	switch (o->val) {
	case 'd':
		a->pin_dir = arg;
		break;
	case 'j':
		a->json = true;
		break;
	case 'p':
		return port_filter("list", arg, &a->port);
	case 's':
		a->have_src = true;
		return src_filter("list", arg, &a->src);
	case 'S':
		a->state = record_state_of_name(arg);
		if (a->state < 0)
			return usage_error("list", "--state %s: not one of pending, done, error, plain", arg);
		break;
	case 'w':
		a->watch = true;
		break;
	default: /* --interval */
		a->interval_s = strtod(arg, &end);
		if (*end || end == arg || !(a->interval_s >= 0.1 && a->interval_s <= 3600))
			return usage_error("list", "--interval %s: seconds between 0.1 and 3600", arg);
		break;
	}
	return 0;
}

static const struct cli_command list_command = {
	.name = "list", .opts = list_options, .n_opts = ARRAY_SIZE(list_options),
	.usage = list_usage, .more = list_more, .apply = list_option,
};

/* Does a table entry pass the filters? */
static bool wanted(const struct list_args *a, const struct ppbpf_conn *c)
{
	int oaf = ppbpf_family_af(c->family);

	if (a->port >= 0 && c->local.port != a->port)
		return false;
	if (a->state >= 0 && c->state != a->state)
		return false;
	if (a->have_src && !(c->state == PPBPF_STATE_DONE && (oaf == AF_INET || oaf == AF_INET6) &&
			     cidr_contains(&a->src, oaf, c->src.addr)))
		return false;
	return true;
}

static void print_conn(struct json *j, __u64 cookie, const struct ppbpf_conn *c, __u64 now)
{
	int af = stored_addr_af(c->af, c->local.addr), oaf = ppbpf_family_af(c->family);
	char local[64], peer[64], src[64] = "-", dst[64] = "-", tlvs[64] = "";
	double age = (double)(now - c->established_ns) / 1e9;
	int has_orig = c->state == PPBPF_STATE_DONE && (oaf == AF_INET || oaf == AF_INET6);

	format_endpoint(local, sizeof(local), af, c->local.addr, c->local.port);
	format_endpoint(peer, sizeof(peer), af, c->peer.addr, c->peer.port);
	if (has_orig) {
		format_endpoint(src, sizeof(src), oaf, c->src.addr, c->src.port);
		format_endpoint(dst, sizeof(dst), oaf, c->dst.addr, c->dst.port);
	}
	for (int i = 0, n = 0; i < c->n_tlvs && i < 8; i++)
		n += snprintf(tlvs + n, sizeof(tlvs) - (size_t)n, "%s0x%02x", i ? "," : "", c->tlv_types[i]);
	if (!j) {
		printf("%-20llu %-24s %-24s %-24s %-24s v%-2u %-8s %8.1fs %s\n", (unsigned long long)cookie, local, peer,
		       src, dst, c->version, record_state_name(c->state), age, tlvs);
		return;
	}
	json_obj_begin(j);
	json_kv_int(j, "cookie", (long long)cookie);
	json_kv_str(j, "local", local);
	json_kv_str(j, "peer", peer);
	if (has_orig) {
		json_kv_str(j, "src", src);
		json_kv_str(j, "dst", dst);
	}
	json_kv_str(j, "state", record_state_name(c->state));
	if (c->state == PPBPF_STATE_DONE) {
		json_kv_int(j, "version", c->version);
		json_kv_str(j, "command", c->command == PPBPF_CMD_PROXY ? "PROXY" : "LOCAL");
		json_kv_str(j, "family", ppbpf_family_name(c->family));
		json_kv_int(j, "header_len", c->header_len);
	}
	if (c->state == PPBPF_STATE_ERROR)
		json_kv_str(j, "error", ppbpf_errname(c->error) ? ppbpf_errname(c->error) : "?");
	json_kv_int(j, "age_ms", (long long)(age * 1000));
	json_kv_int(j, "tlv_count", c->n_tlvs);
	json_key(j, "tlv_types");
	json_arr_begin(j);
	for (int i = 0; i < c->n_tlvs && i < 8; i++)
		json_int(j, c->tlv_types[i]);
	json_arr_end(j);
	json_obj_end(j);
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

/* One listing of the table through the filters. */
static void list_once(const struct list_args *a, int conns)
{
	__u64 key, next, now = now_ns();
	void *prev = NULL;
	struct json j;

	if (a->json) {
		json_init(&j, stdout);
		json_arr_begin(&j);
	} else {
		printf("%-20s %-24s %-24s %-24s %-24s %-3s %-8s %9s %s\n", "COOKIE", "LOCAL", "PEER", "SOURCE",
		       "DESTINATION", "VER", "STATE", "AGE", "TLVS");
	}
	while (!bpf_map_get_next_key(conns, prev, &next)) {
		struct ppbpf_conn c;

		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(conns, &key, &c) && wanted(a, &c))
			print_conn(a->json ? &j : NULL, key, &c, now);
	}
	if (a->json) {
		json_arr_end(&j);
		json_end(&j);
	}
	fflush(stdout);
}

static volatile sig_atomic_t stop_watch;

static void on_stop(int sig)
{
	(void)sig;
	stop_watch = 1;
}

/* Sleep s seconds, or less if interrupted. */
static void pause_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

int cmd_list(int argc, char **argv)
{
	struct list_args a = { .pin_dir = PPBPF_PIN_DIR, .port = -1, .state = -1, .interval_s = 1.0 };
	struct ppbpf_maps m;
	int rc = cli_parse(&list_command, argc, argv, &a);

	if (rc)
		return rc;
	loader_verbose(false);
	if (!loader_attached(a.pin_dir) || loader_open_maps(a.pin_dir, &m)) {
		fprintf(stderr, "ppbpf list: not attached (no pins in %s)\n", a.pin_dir);
		return EXIT_FAIL;
	}
	if (!a.watch) {
		list_once(&a, m.conns);
		loader_close_maps(&m);
		return EXIT_OK;
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	while (!stop_watch) {
		time_t t = time(NULL);
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", localtime(&t));
		if (!a.json)
			printf("%s\n", when);
		list_once(&a, m.conns);
		pause_s(a.interval_s);
	}
	loader_close_maps(&m);
	return EXIT_OK;
}
