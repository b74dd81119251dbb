// SPDX-License-Identifier: MIT
/* `ppbpf stats`: the counters as a table, as JSON, or in Prometheus's text exposition format. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <ppbpf/abi.h>
#include "cli.h"
#include "counters.h"
#include "json.h"
#include "loader.h"
#include "metrics.h"
#include "options.h"

static const char stats_usage[] =
	"Usage: ppbpf stats [--pin-dir DIR] [--json | --prometheus]\n"
	"\n"
	"Show the kernel side's counters (totals since the first attach of DIR) and\n"
	"how many connections and pending headers it holds now: a table, one JSON\n"
	"object, or Prometheus's text exposition format (ppbpf_*_total counters, with\n"
	"labels for versions, reasons and segment outcomes, and two gauges).\n"
	"\n";

static const char stats_more[] =
	"\n"
	"Examples:\n"
	"  ppbpf stats\n"
	"  ppbpf stats --json | jq .counters.rejected\n"
	"  ppbpf stats --prometheus > /var/lib/prometheus/node-exporter/ppbpf.prom\n";

enum stats_format { STATS_TABLE, STATS_JSON, STATS_PROMETHEUS };

struct stats_args {
	const char *pin_dir;
	enum stats_format format;
};

static const struct cli_option stats_options[] = {
	PIN_DIR_OPTION,
	{ .name = "json", .val = 'j', .help = "one JSON object instead of a table" },
	{ .name = "prometheus", .val = 'P', .help = "Prometheus's text exposition format" },
	CLI_HELP_OPTION,
};

static int stats_option(void *ctx, const struct cli_option *o, const char *arg)
{
	struct stats_args *a = ctx;

	if (o->val == 'd')
		a->pin_dir = arg;
	else if (a->format != STATS_TABLE)
		return usage_error("stats", "--json and --prometheus exclude each other");
	else
		a->format = o->val == 'j' ? STATS_JSON : STATS_PROMETHEUS;
	return 0;
}

static const struct cli_command stats_command = {
	.name = "stats", .opts = stats_options, .n_opts = ARRAY_SIZE(stats_options),
	.usage = stats_usage, .more = stats_more, .apply = stats_option,
};

/*
 * Each counter as a Prometheus sample: its metric (without the _total the
 * exposition adds), an optional label, and the metric's help on the first
 * row of each metric. Rows of one metric follow each other.
 */
static const struct metric_row {
	int counter;
	const char *metric;
	const char *label; /* `name="value"`, or NULL */
	const char *help;
} metric_rows[] = {
	{ PPBPF_CNT_TRACKED, "connections_tracked", NULL, "Connections tracked on a port with a policy." },
	{ PPBPF_CNT_CLOSED, "connections_closed", NULL, "Tracked connections closed." },
	{ PPBPF_CNT_UNTRUSTED, "connections_untrusted", NULL, "Connections from untrusted peers, left plain." },
	{ PPBPF_CNT_PLAIN, "connections_plain", "reason=\"no_header\"",
	  "Connections on optional ports that sent no header, left plain." },
	{ PPBPF_CNT_TIMEOUT_PLAIN, "connections_plain", "reason=\"timeout\"", NULL },
	{ PPBPF_CNT_V1, "headers", "version=\"1\"", "PROXY headers accepted, by version." },
	{ PPBPF_CNT_V2, "headers", "version=\"2\"", NULL },
	{ PPBPF_CNT_LOCAL, "headers_local", NULL, "v2 LOCAL headers (the real peer is kept)." },
	{ PPBPF_CNT_UNKNOWN, "headers_unknown_family", NULL, "v1 UNKNOWN and v2 UNSPEC headers (the real peer is kept)." },
	{ PPBPF_CNT_NOT_PROXY, "streams_without_header", NULL, "Streams that did not start with a PROXY header." },
	{ PPBPF_CNT_ERR_V1, "header_errors", "kind=\"v1\"", "Malformed headers, by kind." },
	{ PPBPF_CNT_ERR_V2, "header_errors", "kind=\"v2\"", NULL },
	{ PPBPF_CNT_ERR_TOO_LARGE, "header_errors", "kind=\"too_large\"", NULL },
	{ PPBPF_CNT_REJECTED, "rejected", NULL, "Connections rejected, every reason." },
	{ PPBPF_CNT_REJ_UNTRUSTED, "rejected_by_reason", "reason=\"untrusted\"",
	  "Connections rejected, by reason (invalid headers are counted in header_errors)." },
	{ PPBPF_CNT_REJ_VERSION, "rejected_by_reason", "reason=\"version\"", NULL },
	{ PPBPF_CNT_REJ_TIMEOUT, "rejected_by_reason", "reason=\"timeout\"", NULL },
	{ PPBPF_CNT_REJ_NO_ROOM, "rejected_by_reason", "reason=\"table_full\"", NULL },
	{ PPBPF_CNT_REJ_CHANGED, "rejected_by_reason", "reason=\"changed\"", NULL },
	{ PPBPF_CNT_RESETS, "resets", NULL, "Rejected connections reset by the sweep." },
	{ PPBPF_CNT_REVOKED, "revoked", NULL, "Pending headers not honoured after a policy or trust change." },
	{ PPBPF_CNT_PENDING, "pending_segments", NULL, "Segments after which a header was still incomplete." },
	{ PPBPF_CNT_SEGMENTS, "segments", "outcome=\"copied\"", "Segments of pending headers, by outcome." },
	{ PPBPF_CNT_HELD, "segments", "outcome=\"held\"", NULL },
	{ PPBPF_CNT_OUT_OF_ORDER, "segments", "outcome=\"out_of_order\"", NULL },
	{ PPBPF_CNT_RETRANSMIT, "segments", "outcome=\"retransmit\"", NULL },
	{ PPBPF_CNT_BUSY, "segments", "outcome=\"busy\"", NULL },
	{ PPBPF_CNT_BEFORE_SETUP, "segments", "outcome=\"before_setup\"", NULL },
	{ PPBPF_CNT_UNDECODABLE, "segments", "outcome=\"undecodable\"", NULL },
	{ PPBPF_CNT_NO_HANDSHAKE, "segments", "outcome=\"no_handshake\"", NULL },
	{ PPBPF_CNT_DROPPED, "segments", "outcome=\"dropped_rejected\"", NULL },
	{ PPBPF_CNT_CLOSED_UNREAD, "segments", "outcome=\"closed_unread\"", NULL },
	{ PPBPF_CNT_HANDOFF, "listener_handoffs", NULL, "Headers judged at the listener (deferred accept)." },
	{ PPBPF_CNT_TLV_TRUNCATED, "tlv_truncated", NULL, "Headers whose TLVs were longer than the cap." },
	{ PPBPF_CNT_QUERIES, "queries", NULL, "getsockopt(SOL_PPBPF) queries answered." },
	{ PPBPF_CNT_REWRITES, "peer_rewrites", NULL, "getpeername() and accept() answers rewritten." },
	{ PPBPF_CNT_NO_MEMORY, "no_memory", NULL, "Records or table entries that could not be made." },
	{ PPBPF_CNT_EVENTS_LOST, "events_lost", NULL, "Rejection events lost: the ring buffer was full." },
	{ PPBPF_CNT_TRACE_LOST, "trace_events_lost", NULL, "Trace events lost: ppbpf trace read too slowly." },
	{ PPBPF_CNT_T_FLOWS, "transparent_flows", NULL, "Transparent mode: headers taken out of the stream." },
	{ PPBPF_CNT_T_HELD_ACKS, "transparent_held_acks", NULL, "Transparent mode: handshake ACKs held for the header." },
	{ PPBPF_CNT_T_RESETS, "transparent_resets", NULL, "Transparent mode: handshakes reset." },
	{ PPBPF_CNT_T_NO_ROOM, "transparent_refused", "reason=\"table_full\"",
	  "Transparent mode: connections refused or reset, by reason." },
	{ PPBPF_CNT_T_FASTOPEN, "transparent_refused", "reason=\"fastopen\"", NULL },
	{ PPBPF_CNT_T_SIGNED, "transparent_refused", "reason=\"signed\"", NULL },
	{ PPBPF_CNT_T_SOCKMAP, "transparent_refused", "reason=\"sockmap\"", NULL },
	{ PPBPF_CNT_T_LATE_PLAIN, "transparent_refused", "reason=\"late_plain\"", NULL },
	{ PPBPF_CNT_SENT, "sent", NULL, "Sending side: headers written before a connection's first bytes." },
	{ PPBPF_CNT_SEND_RELEASED, "send_released", NULL, "Sending side: sockets out of the sockhash, header sent." },
	{ PPBPF_CNT_SEND_FAILED, "send_failed", NULL, "Sending side: first sends failed, the header could not be written." },
	{ PPBPF_CNT_SEND_NO_ROOM, "send_no_room", NULL, "Sending side: connections that could get no header (failed closed)." },
	{ PPBPF_CNT_SEND_DROPPED, "send_dropped_segments", NULL,
	  "Sending side: data segments dropped, their connection had no header." },
	{ PPBPF_CNT_SEND_FASTOPEN, "send_fastopen_refused", NULL, "Sending side: TCP Fast Open connects refused." },
	{ PPBPF_CNT_RELAY_TOKENS, "relay_tokens", NULL, "Relay tokens handed out for inbound sockets." },
	{ PPBPF_CNT_RELAYED, "relayed", NULL, "Outgoing sockets given a relayed header." },
	{ PPBPF_CNT_RELAY_REFUSED, "relay_refused", NULL, "PPBPF_RELAY calls refused." },
};

/* Does metric_rows name every counter once? (A counter added without a row fails every `stats`.) */
static bool rows_complete(void)
{
	int seen[PPBPF_CNT_MAX] = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(metric_rows); i++)
		seen[metric_rows[i].counter]++;
	for (int k = 0; k < PPBPF_CNT_MAX; k++)
		if (seen[k] != 1) {
			fprintf(stderr, "ppbpf stats: counter %s has %d metric rows (a bug)\n", counter_names[k], seen[k]);
			return false;
		}
	return true;
}

/* What stats shows, read from the pins. */
struct stats {
	__u64 cnt[PPBPF_CNT_MAX];
	long connections, pending;
};

static void read_stats(const struct ppbpf_maps *m, struct stats *st)
{
	read_counters(m->stats, st->cnt);
	st->connections = count_entries(m->conns);
	st->pending = count_entries(m->pending) + count_entries(m->pending_small);
}

static void print_prometheus(FILE *f, const struct stats *st)
{
	for (size_t i = 0; i < ARRAY_SIZE(metric_rows); i++) {
		const struct metric_row *r = &metric_rows[i];

		if (r->help)
			fprintf(f, "# HELP ppbpf_%s_total %s\n# TYPE ppbpf_%s_total counter\n", r->metric, r->help,
				r->metric);
		fprintf(f, "ppbpf_%s_total%s%s%s %llu\n", r->metric, r->label ? "{" : "", r->label ? r->label : "",
			r->label ? "}" : "", (unsigned long long)st->cnt[r->counter]);
	}
	fprintf(f, "# HELP ppbpf_connections Connections in the connection table now.\n"
		"# TYPE ppbpf_connections gauge\nppbpf_connections %ld\n", st->connections);
	fprintf(f, "# HELP ppbpf_pending_headers Headers still incomplete now.\n"
		"# TYPE ppbpf_pending_headers gauge\nppbpf_pending_headers %ld\n", st->pending);
}

int stats_write_prometheus(FILE *f, const struct ppbpf_maps *m)
{
	struct stats st;

	if (!rows_complete())
		return -EINVAL;
	read_stats(m, &st);
	print_prometheus(f, &st);
	return 0;
}

static void print_json(const struct stats *st)
{
	struct json j;

	json_init(&j, stdout);
	json_obj_begin(&j);
	json_kv_int(&j, "connections", st->connections);
	json_kv_int(&j, "pending", st->pending);
	json_key(&j, "counters");
	json_obj_begin(&j);
	for (int k = 0; k < PPBPF_CNT_MAX; k++)
		json_kv_int(&j, counter_names[k], (long long)st->cnt[k]);
	json_obj_end(&j);
	json_obj_end(&j);
	json_end(&j);
}

/* A row's label as the table shows it: ` [reason=timeout]`, or "". */
static const char *table_label(const struct metric_row *r, char *out, size_t cap)
{
	size_t n = 0;

	if (!r->label)
		return "";
	n += (size_t)snprintf(out, cap, " [");
	for (const char *c = r->label; *c && n + 2 < cap; c++)
		if (*c != '"')
			out[n++] = *c;
	snprintf(out + n, cap - n, "]");
	return out;
}

static void print_table(const struct stats *st)
{
	const char *help = "";
	char label[64];

	printf("%-28s %20s  %s\n", "COUNTER", "VALUE", "WHAT");
	for (size_t i = 0; i < ARRAY_SIZE(metric_rows); i++) {
		const struct metric_row *r = &metric_rows[i];

		help = r->help ? r->help : help;
		printf("%-28s %20llu  %s%s\n", counter_names[r->counter], (unsigned long long)st->cnt[r->counter], help,
		       table_label(r, label, sizeof(label)));
	}
	printf("%-28s %20ld  %s\n", "connections (now)", st->connections, "Connections in the connection table.");
	printf("%-28s %20ld  %s\n", "pending (now)", st->pending, "Headers still incomplete.");
}

int cmd_stats(int argc, char **argv)
{
	struct stats_args a = { .pin_dir = PPBPF_PIN_DIR };
	struct ppbpf_maps m;
	struct stats st;
	int rc = cli_parse(&stats_command, argc, argv, &a);

	if (rc)
		return rc;
	if (!rows_complete())
		return EXIT_FAIL;
	loader_verbose(false);
	if (!loader_attached(a.pin_dir) || loader_open_maps(a.pin_dir, &m)) {
		fprintf(stderr, "ppbpf stats: nothing attached at %s\n", a.pin_dir);
		return EXIT_FAIL;
	}
	read_stats(&m, &st);
	loader_close_maps(&m);
	if (a.format == STATS_PROMETHEUS)
		print_prometheus(stdout, &st);
	else if (a.format == STATS_JSON)
		print_json(&st);
	else
		print_table(&st);
	return EXIT_OK;
}
