// SPDX-License-Identifier: MIT
/*
 * `ppbpf run`: the foreground daemon. It attaches (or picks up what is
 * pinned), applies the policy (exactly its config: what the config does not
 * have is removed), logs rejections from the ring buffer, and runs the sweep
 * iterator, which resets rejected sockets and times out late headers, soon
 * after events (at most every SWEEP_MIN_MS) and every --sweep-ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "counters.h"
#include "features.h"
#include "loader.h"
#include "metrics.h"
#include "options.h"
#include "tc.h"
#include "sockdiag.h"

/* syslog priorities as journald reads them from a "<N>" prefix on stderr. */
#define LOG_ERR "<3>"
#define LOG_WARNING "<4>"
#define LOG_INFO "<6>"

/* Sweeps that events ask for are at least this far apart: a flood of rejections must not keep the daemon walking every TCP socket. */
#define SWEEP_MIN_MS 10

static const char run_usage[] =
	"Usage: ppbpf run [--config FILE] [--keep] [--sweep-ms MS] [--log-rate N]\n"
	"                 [policy options, as for attach]\n"
	"\n"
	"Run in the foreground, for systemd. Attach (or pick up the programs already\n"
	"pinned in --pin-dir, with their live connections), apply the policy, then:\n"
	"log each rejection (untrusted peer, malformed header, refused version, header\n"
	"too large, missing or late, full table) as one line on stderr, rate-limited;\n"
	"reset rejected connections (an RST to the peer, ECONNABORTED to the\n"
	"application); and reset headers still incomplete at the port's --timeout.\n"
	"With --transparent ports it also sweeps their flow table after TIME_WAIT and\n"
	"attaches to interfaces that appear later.\n"
	"The policy is exactly the options and the config, at start and on every\n"
	"reload: a port or a trusted source that is no longer there is removed (new\n"
	"sources are added before old ones go, so a port that stays never passes\n"
	"through \"nobody is trusted\"). One daemon per --pin-dir (a lock on the\n"
	"folder). SIGHUP re-reads the config file; an invalid one is refused whole\n"
	"(FILE:LINE: why) and the policy stays. SIGTERM or SIGINT exits: the programs\n"
	"are detached, unless --keep is given, in which case they stay pinned and a\n"
	"new `ppbpf run` carries on with every live connection. The last line says\n"
	"how many sweeps and events there were. A start that fails after attaching\n"
	"detaches what it attached, even with --keep; programs it picked up stay.\n"
	"\n";

static const char run_more[] =
	"\n"
	"Config file example (/etc/ppbpf/ppbpf.conf):\n"
	"  cgroup system.slice\n"
	"  port 443 trust 10.0.0.0/8,2001:db8::/32 untrusted reject versions 2\n"
	"  port 8080 trust 192.0.2.10 mode optional timeout 1000 rewrite-peer\n"
	"  port 6379 trust 10.0.0.0/8 transparent\n"
	"\n"
	"Examples:\n"
	"  ppbpf run --config /etc/ppbpf/ppbpf.conf --keep\n"
	"  ppbpf run --config /etc/ppbpf/ppbpf.conf --check   # validate, print the policy\n"
	"  ppbpf run --cgroup system.slice/app.service --port 8080 --trust 10.0.0.0/8 \\\n"
	"      --untrusted reject\n";

static volatile sig_atomic_t stop_signal, reload_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_signal = 1;
	else
		stop_signal = sig;
}

/* Lines allowed per second, with a burst of as many; what is suppressed is counted. */
struct rate_limit {
	unsigned int per_sec;
	double tokens;
	long last_ms;
	unsigned long suppressed;
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool rate_allow(struct rate_limit *r)
{
	long now = now_ms();

	r->tokens += (double)(now - r->last_ms) * r->per_sec / 1000.0;
	if (r->tokens > r->per_sec)
		r->tokens = r->per_sec;
	r->last_ms = now;
	if (r->per_sec && r->tokens >= 1.0) {
		r->tokens -= 1.0;
		if (r->suppressed) {
			fprintf(stderr, LOG_WARNING "ppbpf: %lu rejection lines suppressed (--log-rate %u)\n",
				r->suppressed, r->per_sec);
			r->suppressed = 0;
		}
		return true;
	}
	r->suppressed++;
	return false;
}

struct run_state {
	struct rate_limit rl;
	unsigned long events, sweeps;
	long started_ms;
	int trace_ctl; /* the pinned map naming the tracer */
};

/*
 * A `ppbpf trace` killed before it could say it stopped leaves its pid in
 * trace_ctl, and the kernel would go on filling the trace ring for nobody:
 * such a pid is cleared.
 */
static void clear_stale_tracer(int ctl_fd, bool verbose)
{
	struct ppbpf_trace_ctl none = {};
	__u32 zero = 0, pid = tracer_pid(ctl_fd);

	if (!pid || tracer_alive(pid))
		return;
	if (!bpf_map_update_elem(ctl_fd, &zero, &none, BPF_ANY) && verbose)
		fprintf(stderr, LOG_INFO "ppbpf: trace pid %u is gone; tracing stopped\n", pid);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct run_state *st = ctx;
	const struct ppbpf_event *e = data;
	char peer[80], local[80];
	const char *name;
	int af;

	if (size < sizeof(*e))
		return 0;
	st->events++;
	if (!rate_allow(&st->rl))
		return 0;
	af = stored_addr_af(e->af, e->local.addr);
	format_endpoint(peer, sizeof(peer), af, e->peer.addr, e->peer.port);
	format_endpoint(local, sizeof(local), af, e->local.addr, e->local.port);
	name = ppbpf_errname(e->error);
	fprintf(stderr, LOG_WARNING "ppbpf: rejected peer=%s local=%s reason=%s bytes=%u cookie=%llu: %s\n", peer,
		local, name ? name : "unknown", e->have, (unsigned long long)e->cookie, ppbpf_strerror(e->error));
	return 0;
}

/* Resets over inet_diag, where the sweep asks for them (kernels without bpf_sock_destroy). */
struct resetter {
	int fd;           /* NETLINK_SOCK_DIAG, opened at the first request; -1 before */
	int last_error;   /* what the last failed reset said, so a failure is logged once until it changes */
};

/* Why resets over inet_diag fail, once per kind of failure. */
static void say_reset_failure(struct resetter *r, int err)
{
	if (err != r->last_error)
		fprintf(stderr, LOG_ERR "ppbpf: cannot reset rejected connections over inet_diag (SOCK_DESTROY): "
			"%s; they stay open, and none of their bytes are delivered\n",
			err == -EINVAL ? "unreadable sweep line"
			: err == -ENOENT ? "tcp_diag is not loaded" : strerror(-err));
	r->last_error = err;
}

/*
 * This kernel's sweep asks for resets (no bpf_sock_destroy): check now, on a
 * loopback connection of our own, that they work, and say so either way.
 */
static void resetter_start(struct resetter *r)
{
	int err = r->fd = sockdiag_open();

	if (r->fd >= 0)
		err = sockdiag_probe(r->fd);
	if (err)
		say_reset_failure(r, err);
	else
		fprintf(stderr, LOG_INFO "ppbpf: rejected connections are reset over inet_diag (SOCK_DESTROY)\n");
}

/* Reset the socket a sweep line names. Returns 1 if it was reset, else 0 (said once per kind of failure). */
static int reset_named(struct resetter *r, const char *line, int len)
{
	struct reset_target t;
	char copy[256];
	int err;

	snprintf(copy, sizeof(copy), "%.*s", len, line);
	err = reset_target_parse(copy, &t);
	if (!err && r->fd < 0 && (r->fd = sockdiag_open()) < 0)
		err = r->fd;
	if (!err)
		err = sockdiag_destroy(r->fd, &t);
	if (!err)
		return 1;
	if (err == -ENOENT && r->last_error != -ENOENT)
		return 0; /* closed meanwhile (or tcp_diag is missing, which resetter_start said) */
	say_reset_failure(r, err);
	return 0;
}

/* One sweep; returns the number of sockets reset, or -errno. */
static int sweep(const char *pin_dir, struct resetter *r, bool verbose)
{
	static char out[1 << 16];
	int rc = loader_sweep(pin_dir, out, sizeof(out)), resets = 0;

	if (rc)
		return rc;
	for (char *line = out; *line;) {
		char *nl = strchr(line, '\n');
		int len = nl ? (int)(nl - line) : (int)strlen(line);
		int reset = 1;

		/* "<cookie> <error>": the sweep reset it; more fields: it asks us to */
		if (memchr(line, ' ', (size_t)len) != memrchr(line, ' ', (size_t)len))
			reset = reset_named(r, line, len);
		resets += reset;
		if (verbose && reset)
			fprintf(stderr, LOG_INFO "ppbpf: reset %.*s\n", len, line);
		if (!nl)
			break;
		line = nl + 1;
	}
	return resets;
}

/* The options, from the command line and then the config file. */
static int load_options(int argc, char **argv, struct attach_args *a)
{
	int rc;

	options_init(a, "run");
	rc = options_parse(argc, argv, a, "run", run_usage, run_more);
	if (!rc && a->config)
		rc = options_read_config(a->config, a);
	if (rc)
		return rc;
	if (!a->n_groups && !a->n_sends)
		return usage_error("run", "no policy: give --port or --send, or a config with a 'port' or 'send' line");
	return 0;
}

static void install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* SIGHUP: the config file again, applied live. */
static void reload(int argc, char **argv, struct attach_args *a)
{
	static struct attach_args fresh_args;
	bool fresh;

	if (load_options(argc, argv, &fresh_args)) {
		fprintf(stderr, LOG_ERR "ppbpf: reload failed: the config is invalid; the old policy stays\n");
		return;
	}
	if (strcmp(fresh_args.pin_dir, a->pin_dir)) {
		fprintf(stderr, LOG_ERR "ppbpf: reload: --pin-dir cannot change while running; the old policy stays\n");
		return;
	}
	if (options_apply(&fresh_args, "run", true, &fresh)) {
		fprintf(stderr, LOG_ERR "ppbpf: reload failed while applying (said above); each port has its old "
					"or its new policy. Fix it and send SIGHUP again\n");
		return;
	}
	*a = fresh_args;
	fprintf(stderr, LOG_INFO "ppbpf: policy reloaded (%d policy group(s); any other port removed)\n", a->n_groups);
}

/*
 * When the next sweep is due: every --sweep-ms, and sooner after events (the
 * rejected sockets they name), but never sooner than SWEEP_MIN_MS after the
 * last one.
 */
static long sweep_due(long next_periodic, long last_sweep, bool events_waiting)
{
	long soon = last_sweep + SWEEP_MIN_MS;

	return events_waiting && soon < next_periodic ? soon : next_periodic;
}

/* How often transparent mode's upkeep runs: the flow table's sweep, and interfaces that came since. */
#define UPKEEP_MS 1000

static void transparent_upkeep(const struct attach_args *a)
{
	int n = flows_sweep(a->pin_dir);

	if (n < 0)
		fprintf(stderr, LOG_ERR "ppbpf: failed to sweep the transparent flows: %s\n", strerror(-n));
	else if (n && a->verbose)
		fprintf(stderr, LOG_INFO "ppbpf: %d transparent flows past TIME_WAIT removed\n", n);
	/* an interface that appeared since (a filter already there is only replaced) */
	if (tc_attach(a->pin_dir, a->devs, true) < 0)
		fprintf(stderr, LOG_ERR "ppbpf: failed to attach transparent mode to new interfaces\n");
}

static int serve(int argc, char **argv, struct attach_args *a, struct ring_buffer *rb, struct run_state *st)
{
	struct resetter resetter = { .fd = -1 };
	struct kernel_report kr;
	long next_sweep = 0, last_sweep = -SWEEP_MIN_MS, last_upkeep = 0;
	bool events_waiting = false;
	int rc = EXIT_OK;

	features_probe(&kr);
	if (!kr.sock_destroy)
		resetter_start(&resetter);

	while (!stop_signal) {
		long now = now_ms(), due = sweep_due(next_sweep, last_sweep, events_waiting);
		int n, wait = due > now ? (int)(due - now) : 0;

		if (reload_signal) {
			reload_signal = 0;
			reload(argc, argv, a);
		}
		n = ring_buffer__poll(rb, wait);
		if (n < 0 && n != -EINTR) {
			fprintf(stderr, LOG_ERR "ppbpf: failed to read events: %s\n", strerror(-n));
			rc = EXIT_FAIL;
			break;
		}
		events_waiting |= n > 0;
		if (now_ms() >= sweep_due(next_sweep, last_sweep, events_waiting)) {
			int r = sweep(a->pin_dir, &resetter, a->verbose);

			if (r < 0 && !stop_signal) {
				fprintf(stderr, LOG_ERR "ppbpf: failed to run the sweep: %s\n", strerror(-r));
				rc = EXIT_FAIL;
				break;
			}
			st->sweeps++;
			if (now_ms() - last_upkeep >= UPKEEP_MS) {
				clear_stale_tracer(st->trace_ctl, a->verbose);
				if (any_transparent(a))
					transparent_upkeep(a);
				last_upkeep = now_ms();
			}
			events_waiting = false;
			last_sweep = now_ms();
			next_sweep = last_sweep + a->sweep_ms;
		}
	}
	if (resetter.fd >= 0)
		close(resetter.fd);
	return rc;
}

/*
 * One daemon per attachment: two would both consume the ring buffer. The
 * lock is on the pin folder and dies with the process, a crash included.
 * Returns the locked fd, or -1 after saying why.
 */
static int lock_pin_dir(const char *pin_dir)
{
	int fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, LOG_ERR "ppbpf run: failed to open %s: %s\n", pin_dir, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		fprintf(stderr, LOG_ERR "ppbpf run: another ppbpf run serves %s (%s)\n", pin_dir,
			errno == EWOULDBLOCK ? "it holds the lock" : strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Detach everything pinned in pin_dir, under the lock that attach and detach take. */
static void detach_on_exit(const char *pin_dir)
{
	int policy_lock = loader_lock(pin_dir), removed = loader_detach(pin_dir);

	loader_unlock(policy_lock);
	fprintf(stderr, LOG_INFO "ppbpf: exiting; detached (%d pins removed)\n", removed < 0 ? 0 : removed);
}

/* The pinned maps and the events ring buffer over them. 0, or EXIT_FAIL after saying why (nothing open). */
static int open_events(const char *pin_dir, struct ppbpf_maps *m, struct run_state *st, struct ring_buffer **rb)
{
	int rc = loader_open_maps(pin_dir, m);

	if (rc) {
		fprintf(stderr, LOG_ERR "ppbpf run: failed to open the maps in %s: %s\n", pin_dir, strerror(-rc));
		return EXIT_FAIL;
	}
	st->trace_ctl = m->trace_ctl;
	*rb = ring_buffer__new(m->events, on_event, st, NULL);
	if (!*rb) {
		fprintf(stderr, LOG_ERR "ppbpf run: failed to open the event ring buffer: %s\n", strerror(errno));
		loader_close_maps(m);
		return EXIT_FAIL;
	}
	return 0;
}

/* "127.0.0.1:9100", "[::1]:9100". */
static void format_sockaddr(char *out, size_t cap, const struct sockaddr_storage *a)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in *in = (const struct sockaddr_in *)a;

	if (a->ss_family == AF_INET6)
		format_endpoint(out, cap, AF_INET6, in6->sin6_addr.s6_addr, ntohs(in6->sin6_port));
	else
		format_endpoint(out, cap, AF_INET, (const __u8 *)&in->sin_addr, ntohs(in->sin_port));
}

/* The /metrics endpoint at addr, said where; NULL after saying why. */
static struct metrics_server *serve_metrics(const struct sockaddr_storage *addr, const struct ppbpf_maps *m)
{
	struct metrics_server *s = metrics_start(addr, m);
	char where[80];

	format_sockaddr(where, sizeof(where), addr);
	if (!s)
		fprintf(stderr, LOG_ERR "ppbpf run: cannot serve metrics at %s (in use, or not an address of this host)\n",
			where);
	else
		fprintf(stderr, LOG_INFO "ppbpf: metrics at http://%s/metrics\n", where);
	return s;
}

int cmd_run(int argc, char **argv)
{
	static struct attach_args a; /* large: the trust lists */
	static struct run_state st;
	struct metrics_server *metrics = NULL;
	struct ring_buffer *rb;
	struct ppbpf_maps m;
	bool fresh;
	int rc, lock;

	rc = load_options(argc, argv, &a);
	if (rc)
		return rc;
	if (a.check) {
		options_print_json(&a, stdout);
		return EXIT_OK;
	}
	loader_verbose(a.verbose);
	/*
	 * The daemon's lock first, then attach: of two daemons started at once,
	 * the second stops here, before it has attached or touched anything.
	 */
	if (loader_pin_dir_ready(a.pin_dir))
		return EXIT_FAIL;
	lock = lock_pin_dir(a.pin_dir);
	if (lock < 0)
		return EXIT_FAIL;
	rc = options_apply(&a, "run", true, &fresh);
	if (rc) {
		close(lock);
		return rc;
	}
	rc = open_events(a.pin_dir, &m, &st, &rb);
	if (rc) {
		if (fresh) /* a start that fails takes back its attach, --keep or not */
			detach_on_exit(a.pin_dir);
		close(lock);
		return rc;
	}
	if (a.metrics.ss_family && !(metrics = serve_metrics(&a.metrics, &m))) {
		ring_buffer__free(rb);
		loader_close_maps(&m);
		if (fresh)
			detach_on_exit(a.pin_dir);
		close(lock);
		return EXIT_FAIL;
	}
	st.rl = (struct rate_limit){ .per_sec = a.log_rate, .tokens = a.log_rate, .last_ms = now_ms() };
	st.started_ms = now_ms();
	install_signals();
	fprintf(stderr, LOG_INFO "ppbpf: running (%s %s; pid %d)\n", fresh ? "attached, pins in" : "picked up",
		a.pin_dir, (int)getpid());
	rc = serve(argc, argv, &a, rb, &st);
	metrics_stop(metrics);
	ring_buffer__free(rb);
	loader_close_maps(&m);
	fprintf(stderr, LOG_INFO "ppbpf: %lu sweeps, %lu events in %ld ms\n", st.sweeps, st.events,
		now_ms() - st.started_ms);
	if (a.keep)
		fprintf(stderr, LOG_INFO "ppbpf: exiting; the programs stay pinned in %s (--keep)\n", a.pin_dir);
	else
		detach_on_exit(a.pin_dir);
	close(lock);
	return rc;
}
