// SPDX-License-Identifier: MIT
/*
 * `ppbpf trace`: live events from the kernel side's ring buffer "trace", one
 * line each (or one JSON object), until interrupted. The kernel writes them
 * only while trace_ctl names this process; a full ring is counted in
 * PPBPF_CNT_TRACE_LOST, which is read back and printed as it grows.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ppbpf/ppbpf.h>
#include "cidr.h"
#include "cli.h"
#include "counters.h"
#include "json.h"
#include "loader.h"
#include "options.h"

static const char trace_usage[] =
	"Usage: ppbpf trace [--pin-dir DIR] [--json] [--port P] [--src CIDR]\n"
	"\n"
	"Stream what the kernel side does, one line per event, until interrupted:\n"
	"  parsed    a header accepted (annotate mode)\n"
	"  shifted   a header accepted and taken out of the stream (transparent mode)\n"
	"  plain     no header, on a port where one is optional\n"
	"  rejected  refused, with the reason (timeout: the header came too late)\n"
	"  closed    a tracked connection closed, with where its header stood\n"
	"  sent      the sending side wrote a header on an outgoing connection\n"
	"Columns: time, event, socket cookie, local end, peer (the balancer), the\n"
	"original source and destination, the version, and details: the reason, or\n"
	"a TLV summary (authority, unique_id, alpn and the AWS, GCP, Azure ids).\n"
	"\n";

static const char trace_more[] =
	"\n"
	"The kernel writes trace events to a ring buffer of their own, and only while\n"
	"a trace runs: `ppbpf run` keeps its own ring (the rejections it resets), so\n"
	"both watch at once, and nothing is spent when nobody traces. One trace runs\n"
	"per pin folder; a second is refused. When this reader falls behind and the\n"
	"ring is full, the kernel drops events and counts them: a line\n"
	"\"LOST n events\" (with --json {\"event\":\"lost\",\"count\":n}) says so as soon\n"
	"as the count grows, and the total is printed on exit.\n"
	"\n"
	"--port matches the local port (sent: the remote port); --src the original\n"
	"source (events without one, such as rejections, do not match it).\n"
	"\n"
	"Examples:\n"
	"  ppbpf trace\n"
	"  ppbpf trace --port 8443 --src 203.0.113.0/24\n"
	"  ppbpf trace --json | jq -c 'select(.event == \"rejected\") | .reason'\n"
	"\n"
	"Exit status: 0 after SIGINT (Ctrl-C) or SIGTERM; 1 if DIR holds no\n"
	"attachment, another trace runs, or reading fails.\n";

static const struct cli_option trace_options[] = {
	PIN_DIR_OPTION,
	{ .name = "json", .val = 'j', .help = "one JSON object per line instead of text" },
	{ .name = "port", .val = 'p', .metavar = "P", .help = "events on local port P (sent: remote port P)" },
	{ .name = "src", .val = 's', .metavar = "CIDR", .help = "events whose original source is in CIDR" },
	CLI_HELP_OPTION,
};

struct trace_args {
	const char *pin_dir;
	bool json;
	int port; /* -1: any */
	bool have_src;
	struct cidr src;
};

static int trace_option(void *ctx, const struct cli_option *o, const char *arg)
{
	struct trace_args *a = ctx;

	switch (o->val) {
	case 'd':
		a->pin_dir = arg;
		break;
	case 'j':
		a->json = true;
		break;
	case 'p':
		return port_filter("trace", arg, &a->port);
	default: /* --src */
		a->have_src = true;
		return src_filter("trace", arg, &a->src);
	}
	return 0;
}

static const struct cli_command trace_command = {
	.name = "trace", .opts = trace_options, .n_opts = ARRAY_SIZE(trace_options),
	.usage = trace_usage, .more = trace_more, .apply = trace_option,
};

static const char *const kind_names[] = {
	[PPBPF_TRACE_PARSED] = "parsed", [PPBPF_TRACE_SHIFTED] = "shifted", [PPBPF_TRACE_PLAIN] = "plain",
	[PPBPF_TRACE_REJECTED] = "rejected", [PPBPF_TRACE_CLOSED] = "closed", [PPBPF_TRACE_SENT] = "sent",
};

static const char *kind_name(const struct ppbpf_trace_event *e)
{
	if (e->kind == PPBPF_TRACE_REJECTED && e->error == PPBPF_E_TIMEOUT)
		return "timeout";
	return e->kind < ARRAY_SIZE(kind_names) && kind_names[e->kind] ? kind_names[e->kind] : "?";
}

/* An event as printed: its endpoints as text, the original ones if it has them, and its TLVs. */
struct event_view {
	char local[64], peer[64], src[64], dst[64];
	bool has_orig;
	int orig_af;         /* AF_INET or AF_INET6 of src and dst */
	__u8 src_addr[16];
	int version;
	__u32 header_len;
	const __u8 *tlvs;    /* raw TLV list */
	size_t tlv_len;
};

/* The original endpoints (family af: AF_INET or AF_INET6), for printing and for --src. */
static void view_orig(struct event_view *v, int af, const __u8 *src, __u16 sport, const __u8 *dst, __u16 dport)
{
	v->has_orig = true;
	v->orig_af = af;
	memcpy(v->src_addr, src, 16);
	format_endpoint(v->src, sizeof(v->src), af, src, sport);
	format_endpoint(v->dst, sizeof(v->dst), af, dst, dport);
}

/* A sent event's data is the header itself: its endpoints and TLVs, parsed back. */
static void view_sent(const struct ppbpf_trace_event *e, struct event_view *v)
{
	struct ppbpf_hdr h;
	int af;

	v->header_len = e->header_len;
	if (ppbpf_parse(e->data, e->data_len, &h) <= 0) /* longer than PPBPF_TRACE_DATA */
		return;
	v->version = h.version;
	v->header_len = h.header_len;
	v->tlvs = e->data + h.tlv_off;
	v->tlv_len = h.tlv_len;
	af = ppbpf_family_af(h.family);
	if (h.command == PPBPF_CMD_PROXY && (af == AF_INET || af == AF_INET6))
		view_orig(v, af, h.src_addr, h.src_port, h.dst_addr, h.dst_port);
}

static void view_of(const struct ppbpf_trace_event *e, struct event_view *v)
{
	int af = stored_addr_af(e->af, e->local.addr), oaf = ppbpf_family_af(e->family);

	memset(v, 0, sizeof(*v));
	strcpy(v->src, "-");
	strcpy(v->dst, "-");
	format_endpoint(v->local, sizeof(v->local), af, e->local.addr, e->local.port);
	format_endpoint(v->peer, sizeof(v->peer), stored_addr_af(e->af, e->peer.addr), e->peer.addr, e->peer.port);
	if (e->kind == PPBPF_TRACE_SENT) {
		view_sent(e, v);
		return;
	}
	v->version = e->version;
	v->header_len = e->header_len;
	v->tlvs = e->data;
	v->tlv_len = e->data_len;
	if (e->state == PPBPF_STATE_DONE && e->command == PPBPF_CMD_PROXY && (oaf == AF_INET || oaf == AF_INET6))
		view_orig(v, oaf, e->src.addr, e->src.port, e->dst.addr, e->dst.port);
}

static bool wanted(const struct trace_args *a, const struct ppbpf_trace_event *e, const struct event_view *v)
{
	int port = e->kind == PPBPF_TRACE_SENT ? e->peer.port : e->local.port;

	if (a->port >= 0 && port != a->port)
		return false;
	return !a->have_src || (v->has_orig && cidr_contains(&a->src, v->orig_af, v->src_addr));
}

/* The TLVs a trace summarises, found in a raw list. */
struct tlv_summary {
	struct ppbpf_tlv authority, unique_id, alpn;
	char aws_vpce[128];
	bool has_gcp, has_azure;
	__u64 gcp_psc;
	__u32 azure_link;
	unsigned int count;
};

static void summarise_tlvs(const __u8 *tlvs, size_t len, struct tlv_summary *s)
{
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;

	memset(s, 0, sizeof(*s));
	ppbpf_tlv_iter_init_raw(&it, tlvs, len);
	while (ppbpf_tlv_next(&it, &t) > 0) {
		s->count++;
		if (t.type == PPBPF_TLV_AUTHORITY && !s->authority.value)
			s->authority = t;
		else if (t.type == PPBPF_TLV_UNIQUE_ID && !s->unique_id.value)
			s->unique_id = t;
		else if (t.type == PPBPF_TLV_ALPN && !s->alpn.value)
			s->alpn = t;
		else if (t.type == PPBPF_TLV_AWS && !s->aws_vpce[0])
			ppbpf_aws_vpce_id(&t, s->aws_vpce, sizeof(s->aws_vpce));
		else if (t.type == PPBPF_TLV_GCP && !s->has_gcp)
			s->has_gcp = !ppbpf_gcp_psc_id(&t, &s->gcp_psc);
		else if (t.type == PPBPF_TLV_AZURE && !s->has_azure)
			s->has_azure = !ppbpf_azure_link_id(&t, &s->azure_link);
	}
}

static bool printable(const struct ppbpf_tlv *t)
{
	for (__u16 i = 0; i < t->len; i++)
		if (t->value[i] <= 0x20 || t->value[i] >= 0x7f)
			return false;
	return true;
}

/* A TLV's value as text, in out: itself where printable (no spaces), else hex. Returns out. */
static const char *tlv_text(const struct ppbpf_tlv *t, char *out, size_t cap)
{
	size_t n = 0;

	if (printable(t)) {
		snprintf(out, cap, "%.*s", (int)t->len, (const char *)t->value);
		return out;
	}
	out[0] = 0;
	for (__u16 i = 0; i < t->len && n + 3 <= cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%02x", t->value[i]);
	return out;
}

/* The details column of a text line. */
static void text_details(const struct ppbpf_trace_event *e, const struct event_view *v, char *out, size_t cap)
{
	struct tlv_summary s;
	char val[300];
	size_t n = 0;

#define ADD(...) (n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__))
	out[0] = 0;
	if (e->kind == PPBPF_TRACE_REJECTED) {
		ADD("reason=%s have=%u", ppbpf_errname(e->error) ? ppbpf_errname(e->error) : "?", e->have);
		return;
	}
	if (e->kind == PPBPF_TRACE_CLOSED)
		ADD("state=%s ", record_state_name(e->state));
	if (v->header_len)
		ADD("len=%u ", v->header_len);
	summarise_tlvs(v->tlvs, v->tlv_len, &s);
	if (s.authority.value)
		ADD("authority=%s ", tlv_text(&s.authority, val, sizeof(val)));
	if (s.unique_id.value)
		ADD("unique_id=%s ", tlv_text(&s.unique_id, val, sizeof(val)));
	if (s.alpn.value)
		ADD("alpn=%s ", tlv_text(&s.alpn, val, sizeof(val)));
	if (s.aws_vpce[0])
		ADD("aws_vpce_id=%s ", s.aws_vpce);
	if (s.has_gcp)
		ADD("gcp_psc_id=%llu ", (unsigned long long)s.gcp_psc);
	if (s.has_azure)
		ADD("azure_link_id=%u ", s.azure_link);
	if (s.count)
		ADD("tlvs=%u", s.count);
#undef ADD
}

static void json_tlvs(struct json *j, const struct event_view *v)
{
	struct tlv_summary s;
	char val[300];

	summarise_tlvs(v->tlvs, v->tlv_len, &s);
	json_key(j, "tlvs");
	json_obj_begin(j);
	json_kv_int(j, "count", s.count);
	if (s.authority.value)
		json_kv_str(j, "authority", tlv_text(&s.authority, val, sizeof(val)));
	if (s.unique_id.value)
		json_kv_str(j, "unique_id", tlv_text(&s.unique_id, val, sizeof(val)));
	if (s.alpn.value)
		json_kv_str(j, "alpn", tlv_text(&s.alpn, val, sizeof(val)));
	if (s.aws_vpce[0])
		json_kv_str(j, "aws_vpce_id", s.aws_vpce);
	if (s.has_gcp) { /* a string: 64-bit ids do not survive JSON readers that use doubles */
		snprintf(val, sizeof(val), "%llu", (unsigned long long)s.gcp_psc);
		json_kv_str(j, "gcp_psc_id", val);
	}
	if (s.has_azure)
		json_kv_int(j, "azure_link_id", s.azure_link);
	json_obj_end(j);
}

struct tracer {
	const struct trace_args *a;
	__s64 wall_minus_mono_ns; /* to print CLOCK_MONOTONIC stamps as wall-clock time */
	unsigned long events;     /* printed */
	__u64 lost;               /* seen lost since the start */
};

static void format_time(const struct tracer *t, __u64 ts_ns, char *out, size_t cap, bool iso)
{
	__s64 wall = (__s64)ts_ns + t->wall_minus_mono_ns;
	time_t sec = (time_t)(wall / 1000000000);
	struct tm tm;
	size_t n;

	localtime_r(&sec, &tm);
	n = strftime(out, cap, iso ? "%Y-%m-%dT%H:%M:%S" : "%H:%M:%S", &tm);
	snprintf(out + n, cap - n, ".%03lld", (long long)(wall % 1000000000) / 1000000);
	if (iso) {
		n = strlen(out);
		strftime(out + n, cap - n, "%z", &tm);
	}
}

static void print_json(const struct tracer *t, const struct ppbpf_trace_event *e, const struct event_view *v)
{
	char when[48];
	struct json j;

	format_time(t, e->ts_ns, when, sizeof(when), true);
	json_init(&j, stdout);
	json_obj_begin(&j);
	json_kv_str(&j, "time", when);
	json_kv_int(&j, "ts_ns", (long long)e->ts_ns);
	json_kv_str(&j, "event", kind_name(e));
	json_kv_int(&j, "cookie", (long long)e->cookie);
	json_kv_str(&j, "local", v->local);
	json_kv_str(&j, "peer", v->peer);
	if (v->has_orig) {
		json_kv_str(&j, "src", v->src);
		json_kv_str(&j, "dst", v->dst);
	}
	if (e->kind == PPBPF_TRACE_REJECTED) {
		json_kv_str(&j, "reason", ppbpf_errname(e->error) ? ppbpf_errname(e->error) : "?");
		json_kv_str(&j, "message", ppbpf_strerror(e->error));
		json_kv_int(&j, "have", e->have);
	} else {
		if (e->kind == PPBPF_TRACE_CLOSED)
			json_kv_str(&j, "state", record_state_name(e->state));
		if (v->version) {
			json_kv_int(&j, "version", v->version);
			json_kv_int(&j, "header_len", v->header_len);
		}
		if (v->tlv_len)
			json_tlvs(&j, v);
	}
	json_obj_end(&j);
	json_end(&j);
}

static void print_text(const struct tracer *t, const struct ppbpf_trace_event *e, const struct event_view *v)
{
	char when[32], ver[8] = "-", details[1024];

	format_time(t, e->ts_ns, when, sizeof(when), false);
	if (v->version)
		snprintf(ver, sizeof(ver), "v%d", v->version);
	text_details(e, v, details, sizeof(details));
	printf("%-12s %-8s %-12llu %-24s %-24s %-24s %-24s %-3s %s\n", when, kind_name(e),
	       (unsigned long long)e->cookie, v->local, v->peer, v->src, v->dst, ver, details);
}

static int on_trace_event(void *ctx, void *data, size_t size)
{
	struct tracer *t = ctx;
	const struct ppbpf_trace_event *e = data;
	struct event_view v;

	if (size < sizeof(*e))
		return 0;
	view_of(e, &v);
	if (!wanted(t->a, e, &v))
		return 0;
	if (t->a->json)
		print_json(t, e, &v);
	else
		print_text(t, e, &v);
	t->events++;
	return 0;
}

/* Print events the kernel could not write since the last look. */
static void report_lost(struct tracer *t, int stats_fd, __u64 base)
{
	__u64 c[PPBPF_CNT_MAX], lost;

	read_counters(stats_fd, c);
	lost = c[PPBPF_CNT_TRACE_LOST] - base;
	if (lost <= t->lost)
		return;
	if (t->a->json)
		printf("{\"event\":\"lost\",\"count\":%llu}\n", (unsigned long long)(lost - t->lost));
	else
		printf("LOST %llu events (the ring buffer was full: this reader was too slow)\n",
		       (unsigned long long)(lost - t->lost));
	t->lost = lost;
}

static volatile sig_atomic_t stop_trace;

static void on_stop(int sig)
{
	(void)sig;
	stop_trace = 1;
}

static __s64 clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (__s64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Name this process in trace_ctl (pid 0: stop). 0 or -errno. */
static int set_tracer(int ctl_fd, __u32 pid)
{
	struct ppbpf_trace_ctl ctl = { .pid = pid, .since_ns = pid ? (__u64)clock_ns(CLOCK_MONOTONIC) : 0 };
	__u32 zero = 0;

	return bpf_map_update_elem(ctl_fd, &zero, &ctl, BPF_ANY) ? -errno : 0;
}

/*
 * One trace per attachment. The lock is an abstract socket named after the
 * pin folder: it dies with the process, a crash included, and needs no file
 * (bpffs holds only pins; `ppbpf run` locks the folder itself). Abstract
 * names are per network namespace, so a live tracer named in trace_ctl is
 * refused too. Returns the socket, or -EBUSY, or -errno.
 */
static int lock_tracing(const char *pin_dir, int ctl_fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	__u32 pid = tracer_pid(ctl_fd);
	int fd, n;

	if (pid && pid != (__u32)getpid() && tracer_alive(pid))
		return -EBUSY;
	n = snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "ppbpf-trace:%s", pin_dir);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path) - 1)
		n = (int)sizeof(sun.sun_path) - 2; /* a long folder: its first 100 bytes */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n))) {
		int err = errno == EADDRINUSE ? -EBUSY : -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void install_stop_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_stop }; /* no SA_RESTART: the poll returns at once */

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int trace_loop(struct tracer *t, struct ppbpf_maps *m)
{
	struct ring_buffer *rb = ring_buffer__new(m->trace, on_trace_event, t, NULL);
	__u64 c[PPBPF_CNT_MAX];
	int rc = EXIT_OK;

	if (!rb) {
		fprintf(stderr, "ppbpf trace: cannot read the ring buffer: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	read_counters(m->stats, c);
	while (!stop_trace) {
		int n = ring_buffer__poll(rb, 200);

		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "ppbpf trace: failed to read events: %s\n", strerror(-n));
			rc = EXIT_FAIL;
			break;
		}
		report_lost(t, m->stats, c[PPBPF_CNT_TRACE_LOST]);
		if (fflush(stdout) == EOF) /* a closed pipe: nobody reads */
			break;
	}
	ring_buffer__consume(rb);
	report_lost(t, m->stats, c[PPBPF_CNT_TRACE_LOST]);
	fflush(stdout);
	ring_buffer__free(rb);
	return rc;
}

int cmd_trace(int argc, char **argv)
{
	struct trace_args a = { .pin_dir = PPBPF_PIN_DIR, .port = -1 };
	struct tracer t = { .a = &a };
	struct ppbpf_maps m;
	int rc = cli_parse(&trace_command, argc, argv, &a), lock;

	if (rc)
		return rc;
	loader_verbose(false);
	if (!loader_attached(a.pin_dir) || loader_open_maps(a.pin_dir, &m)) {
		fprintf(stderr, "ppbpf trace: not attached (no pins in %s)\n", a.pin_dir);
		return EXIT_FAIL;
	}
	lock = lock_tracing(a.pin_dir, m.trace_ctl);
	if (lock < 0) {
		fprintf(stderr, "ppbpf trace: %s\n", lock == -EBUSY ? "another ppbpf trace runs on this attachment"
								 : strerror(-lock));
		loader_close_maps(&m);
		return EXIT_FAIL;
	}
	install_stop_handlers();
	t.wall_minus_mono_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
	/* a pid left by a trace that was killed is stale: it is not alive, and the lock is free */
	if ((rc = set_tracer(m.trace_ctl, (__u32)getpid()))) {
		fprintf(stderr, "ppbpf trace: cannot start tracing: %s\n", strerror(-rc));
		rc = EXIT_FAIL;
	} else {
		fprintf(stderr, "ppbpf trace: tracing %s (pid %d); Ctrl-C stops\n", a.pin_dir, (int)getpid());
		if (!a.json)
			printf("%-12s %-8s %-12s %-24s %-24s %-24s %-24s %-3s %s\n", "TIME", "EVENT", "COOKIE", "LOCAL",
			       "PEER", "SOURCE", "DESTINATION", "VER", "DETAILS");
		rc = trace_loop(&t, &m);
		set_tracer(m.trace_ctl, 0);
		fprintf(stderr, "ppbpf trace: %lu events, %llu lost\n", t.events, (unsigned long long)t.lost);
	}
	close(lock);
	loader_close_maps(&m);
	return rc;
}
