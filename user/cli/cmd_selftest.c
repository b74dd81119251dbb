// SPDX-License-Identifier: MIT
/*
 * `ppbpf selftest`: does transparent mode keep streams intact on this
 * kernel? A private network namespace and cgroup, an attachment of their
 * own, and streams of counters through the sequence shift while a tc
 * program loses and duplicates packets; every counter must arrive, in
 * order, once, and every accept() must see the header's source.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "impair.skel.h"
#include "loader.h"
#include "policy.h"
#include "selftest.h"
#include "tc.h"

/* The port of the test's server, in its own network namespace. */
#define ST_PORT 4242
/* Where a passed run is remembered, one file per kernel release. */
#define ST_STATE_DIR "/var/lib/ppbpf"

static const char selftest_usage[] =
	"Usage: ppbpf selftest [--mib N] [--conns N] [-v]\n"
	"\n"
	"Check that transparent mode keeps streams intact on this kernel: in a\n"
	"private network namespace and cgroup, with an attachment of its own,\n"
	"streams of 64-bit counters cross the sequence shift while a tc program\n"
	"drops 2% and duplicates 1% of the packets (so segments also arrive out\n"
	"of order). Every counter must arrive once and in order, and every\n"
	"accept() must return the header's source. `attach --transparent` runs it\n"
	"the first time on a kernel and refuses the mode where it fails.\n";

static const char selftest_more[] =
	"Exit status: 0 passed (remembered in " ST_STATE_DIR "), 1 failed or could not run.\n"
	"\n"
	"Examples:\n"
	"  ppbpf selftest\n"
	"  ppbpf selftest --mib 256 --conns 16 -v\n";

struct selftest_args {
	unsigned int mib, conns;
	bool verbose;
};

enum { OPT_MIB = CLI_LONG_ONLY, OPT_CONNS };

static const struct cli_option selftest_options[] = {
	{ .name = "mib", .val = OPT_MIB, .metavar = "N", .help = "MiB sent in all (default 32, at most 4096)" },
	{ .name = "conns", .val = OPT_CONNS, .metavar = "N", .help = "connections (default 12, at most 256)" },
	{ .name = "verbose", .val = 'v', .help = "print libbpf's messages and each connection's result" },
	CLI_HELP_OPTION,
};

static int selftest_option(void *ctx, const struct cli_option *o, const char *arg)
{
	struct selftest_args *a = ctx;
	char *end;
	unsigned long v;

	if (o->val == 'v') {
		a->verbose = true;
		return 0;
	}
	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || *end || !*arg || v == 0 || v > (o->val == OPT_MIB ? 4096UL : 256UL))
		return usage_error("selftest", "--%s '%s': must be 1..%u", o->name, arg, o->val == OPT_MIB ? 4096 : 256);
	if (o->val == OPT_MIB)
		a->mib = (unsigned int)v;
	else
		a->conns = (unsigned int)v;
	return 0;
}

static const struct cli_command selftest_command = {
	.name = "selftest", .opts = selftest_options, .n_opts = ARRAY_SIZE(selftest_options),
	.usage = selftest_usage, .more = selftest_more, .apply = selftest_option,
};

/* ---- the streams ---------------------------------------------------------------------------- */

struct st_run {
	unsigned int conns;
	unsigned long long bytes; /* per connection, a multiple of 8 */
	bool verbose;
	int failures;
};

/* Connection i's header source: 198.51.100.(i+1), port 20000 + i (documentation addresses). */
static void source_of(unsigned int i, __u8 addr[4], __u16 *port)
{
	addr[0] = 198;
	addr[1] = 51;
	addr[2] = 100;
	addr[3] = (__u8)(i % 250 + 1);
	*port = (__u16)(20000 + i);
}

static int send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One client: a v2 header (delivered as i picks: with data, alone, in pieces), then counters. */
static int client_one(unsigned int i, unsigned long long bytes)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(ST_PORT) };
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4 };
	static __thread __u64 buf[8192];
	unsigned char hdr[64];
	int fd, len, one = 1, rc = -1;
	unsigned long long sent = 0, next = 0;
	char ok[4];

	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	source_of(i, b.src_addr, &b.src_port);
	memcpy(b.dst_addr, &to.sin_addr, 4);
	b.dst_port = ST_PORT;
	len = ppbpf_build(&b, hdr, sizeof(hdr));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (len < 0 || fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)))
		goto out;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (i % 3 == 1) { /* alone, after a pause: the handshake is held meanwhile */
		usleep(20000);
		if (send_all(fd, hdr, (size_t)len))
			goto out;
		usleep(5000);
	} else if (i % 3 == 2) { /* in three pieces */
		for (int k = 0; k < 3; k++) {
			if (send_all(fd, hdr + k * len / 3, (size_t)((k + 1) * len / 3 - k * len / 3)))
				goto out;
			usleep(2000);
		}
	}
	while (sent < bytes) {
		size_t n = bytes - sent < sizeof(buf) ? (size_t)(bytes - sent) : sizeof(buf);

		for (size_t k = 0; k < n / 8; k++)
			buf[k] = next++;
		if (i % 3 == 0 && sent == 0) { /* with the first data, in one write */
			unsigned char first[64 + 512];

			memcpy(first, hdr, (size_t)len);
			memcpy(first + len, buf, 512);
			if (send_all(fd, first, (size_t)len + 512) || send_all(fd, (char *)buf + 512, n - 512))
				goto out;
		} else if (send_all(fd, buf, n)) {
			goto out;
		}
		sent += n;
	}
	shutdown(fd, SHUT_WR);
	rc = recv(fd, ok, sizeof(ok), MSG_WAITALL) == 4 && !memcmp(ok, "OK\r\n", 4) ? 0 : -1;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* One thread per connection, on each side: a loss's timeout on one does not hold up the others. */
struct st_conn {
	struct st_run *r;
	unsigned int i;
	int fd, rc;
	struct sockaddr_in peer;
	pthread_t t;
};

static void *client_thread(void *arg)
{
	struct st_conn *c = arg;

	c->rc = client_one(c->i, c->r->bytes);
	if (c->rc)
		fprintf(stderr, "selftest: client %u failed: %s\n", c->i, strerror(errno));
	return NULL;
}

/* One accepted connection: its peer, then every counter in order. Returns 0 if all is right. */
static int serve_one(int fd, const struct sockaddr_in *peer, const struct st_run *r, unsigned int *index)
{
	static __thread __u64 buf[8192];
	unsigned long long got = 0, next = 0, bad = 0;
	unsigned int i = (unsigned int)(ntohs(peer->sin_port) - 20000);
	struct timeval tv = { .tv_sec = 30 };
	__u8 want[4];
	__u16 port;
	int eagain = 0;

	*index = i;
	source_of(i, want, &port);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t n = recv(fd, (char *)buf + got % 8, sizeof(buf) - got % 8, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && ++eagain < 3)
			continue;
		if (n <= 0)
			break;
		size_t have = (size_t)(got % 8 + (size_t)n);

		for (size_t k = 0; k < have / 8; k++)
			bad += buf[k] != next++;
		memmove(buf, (char *)buf + have / 8 * 8, have % 8);
		got += (unsigned long long)n;
	}
	send_all(fd, "OK\r\n", 4);
	if (r->verbose || bad || got != r->bytes || memcmp(&peer->sin_addr, want, 4) || i >= r->conns)
		fprintf(stderr, "selftest: connection %u from %s:%u: %llu of %llu bytes, %llu counters wrong\n", i,
			inet_ntoa(peer->sin_addr), ntohs(peer->sin_port), got, r->bytes, bad);
	return bad || got != r->bytes || eagain || memcmp(&peer->sin_addr, want, 4) || i >= r->conns ? -1 : 0;
}

static void *server_thread(void *arg)
{
	struct st_conn *c = arg;
	unsigned int i;

	c->rc = serve_one(c->fd, &c->peer, c->r, &i);
	close(c->fd);
	return NULL;
}

static int run_streams(struct st_run *r)
{
	static struct st_conn cl[256], sv[256];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(ST_PORT) };
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct timeval tv = { .tv_sec = 30 };
	unsigned int started = 0, accepted = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* a lost client cannot hang accept() */
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 256)) {
		fprintf(stderr, "selftest: cannot start the server: %s\n", strerror(errno));
		return -1;
	}
	for (; started < r->conns; started++) {
		cl[started] = (struct st_conn){ .r = r, .i = started };
		if (pthread_create(&cl[started].t, NULL, client_thread, &cl[started]))
			break;
	}
	for (; accepted < started; accepted++) {
		socklen_t plen = sizeof(sv[accepted].peer);

		sv[accepted] = (struct st_conn){ .r = r };
		sv[accepted].fd = accept(ls, (struct sockaddr *)&sv[accepted].peer, &plen);
		if (sv[accepted].fd < 0) {
			fprintf(stderr, "selftest: accept: %s\n", strerror(errno));
			break;
		}
		if (pthread_create(&sv[accepted].t, NULL, server_thread, &sv[accepted])) {
			close(sv[accepted].fd);
			break;
		}
	}
	for (unsigned int k = 0; k < accepted; k++) {
		pthread_join(sv[k].t, NULL);
		r->failures += sv[k].rc != 0;
	}
	for (unsigned int k = 0; k < started; k++) {
		pthread_join(cl[k].t, NULL);
		r->failures += cl[k].rc != 0;
	}
	r->failures += (int)(r->conns - accepted);
	close(ls);
	return r->failures ? -1 : 0;
}

/* ---- the private set-up, in a child process ---------------------------------------------------- */

static int loopback_up(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	rc = s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) ? -1 : 0;
	ifr.ifr_flags |= IFF_UP;
	if (!rc)
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	if (s >= 0)
		close(s);
	return rc;
}

static int write_pid(const char *cgroup)
{
	char p[4300];
	FILE *f;
	int rc;

	snprintf(p, sizeof(p), "%s/cgroup.procs", cgroup);
	f = fopen(p, "w");
	if (!f)
		return -1;
	rc = fprintf(f, "%d\n", (int)getpid()) < 0;
	return fclose(f) || rc ? -1 : 0;
}

/* The loss and duplication on loopback's egress (before the shift, at ingress, sees the packets). */
static struct impair_bpf *impair_lo(void)
{
	struct impair_bpf *skel = impair_bpf__open();
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = 1, .attach_point = BPF_TC_EGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);

	if (!skel)
		return NULL;
	skel->rodata->loss_ppm = 20000;
	skel->rodata->dup_ppm = 10000;
	if (impair_bpf__load(skel) || (bpf_tc_hook_create(&hook) && errno != EEXIST)) {
		impair_bpf__destroy(skel);
		return NULL;
	}
	opts.prog_fd = bpf_program__fd(skel->progs.impair);
	if (bpf_tc_attach(&hook, &opts)) {
		impair_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

static int set_transparent_port(const char *pin_dir)
{
	struct cidr lo = { .af = AF_INET, .bits = 32 };
	struct policy_port p = { .port = ST_PORT, .trust = &lo, .n_trust = 1 };
	struct ppbpf_maps m;
	__u16 failed;
	int rc;

	lo.addr[0] = 127;
	lo.addr[3] = 1;
	p.pol.flags = PPBPF_PORT_TRANSPARENT | PPBPF_PORT_REWRITE_PEER;
	p.pol.timeout_ms = 10000;
	rc = loader_open_maps(pin_dir, &m);
	if (rc)
		return rc;
	rc = policy_apply(&m, &p, 1, true, &failed);
	loader_close_maps(&m);
	return rc;
}

/* The child's whole run, in its own network namespace. Its exit status: 0 passed. */
static int child_run(const char *cgroup, const char *pin_dir, struct st_run *r)
{
	struct impair_bpf *imp;
	int rc;

	if (unshare(CLONE_NEWNET) || loopback_up()) {
		fprintf(stderr, "selftest: cannot make a private network namespace: %s\n", strerror(errno));
		return 1;
	}
	if (write_pid(cgroup)) {
		fprintf(stderr, "selftest: cannot enter %s: %s\n", cgroup, strerror(errno));
		return 1;
	}
	if (loader_pin_dir_ready(pin_dir) || loader_attach(cgroup, pin_dir, 0))
		return 1;
	rc = set_transparent_port(pin_dir);
	if (!rc)
		rc = tc_attach(pin_dir, "lo", false) == 1 ? 0 : -1;
	imp = rc ? NULL : impair_lo();
	if (rc || !imp) {
		fprintf(stderr, "selftest: cannot set up the test: %s\n", strerror(rc ? -rc : errno));
		return 1;
	}
	rc = run_streams(r);
	impair_bpf__destroy(imp);
	return rc ? 1 : 0;
}

static void state_file(char *out, size_t cap)
{
	struct utsname u;

	uname(&u);
	snprintf(out, cap, ST_STATE_DIR "/selftest-passed-%s", u.release);
}

bool selftest_passed_here(void)
{
	char p[512];

	state_file(p, sizeof(p));
	return access(p, F_OK) == 0;
}

int selftest_run(unsigned int mib, unsigned int conns, bool verbose)
{
	char root[4096], cgroup[4200], pin_dir[128], state[512];
	struct st_run r = { .conns = conns, .verbose = verbose };
	int status = 0, rc;
	pid_t pid;

	r.bytes = ((unsigned long long)mib << 20) / conns / 8 * 8;
	if (r.bytes < 4096)
		r.bytes = 4096;
	rc = cgroup2_root(root, sizeof(root));
	if (rc) {
		fprintf(stderr, "selftest: no cgroup2 mount: %s\n", strerror(-rc));
		return -1;
	}
	snprintf(cgroup, sizeof(cgroup), "%s/ppbpf-selftest-%d", root, (int)getpid());
	snprintf(pin_dir, sizeof(pin_dir), PPBPF_PIN_DIR "-selftest-%d", (int)getpid());
	if (mkdir(cgroup, 0755)) {
		fprintf(stderr, "selftest: cannot make %s: %s\n", cgroup, strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(child_run(cgroup, pin_dir, &r));
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		status = -1;
	/* the child's network namespace went with it; its pins and cgroup are removed here */
	if (loader_attached(pin_dir) || access(pin_dir, F_OK) == 0)
		loader_detach(pin_dir);
	if (rmdir(cgroup))
		fprintf(stderr, "selftest: cannot remove %s: %s\n", cgroup, strerror(errno));
	if (status != 0) {
		fprintf(stderr, "selftest: FAILED: transparent mode does not keep streams intact on this kernel\n");
		return -1;
	}
	printf("selftest: passed: %u connections, %llu MiB through the sequence shift with 2%% loss and 1%% "
	       "duplication, every byte in order, every peer the header's\n", conns, (r.bytes * conns) >> 20);
	state_file(state, sizeof(state));
	mkdir(ST_STATE_DIR, 0755);
	close(open(state, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	return 0;
}

int cmd_selftest(int argc, char **argv)
{
	struct selftest_args a = { .mib = 32, .conns = 12 };
	int rc = cli_parse(&selftest_command, argc, argv, &a);

	if (rc)
		return rc;
	loader_verbose(a.verbose);
	return selftest_run(a.mib, a.conns, a.verbose) ? EXIT_FAIL : EXIT_OK;
}
