// SPDX-License-Identifier: MIT
/*
 * ppbpf-demo-server: a tiny TCP server behind a PROXY-protocol balancer.
 * It accepts with ppbpf_accept(), which hands it the connection with the
 * header already consumed, asks ppbpf_get() what the kernel recorded, and
 * prints one JSON line per connection: who really connected, and the TLVs.
 * Where ppbpf is not attached, ppbpf_accept() parses in userspace instead,
 * for the sources given with --fallback-trust (or PPBPF_FALLBACK_TRUST) only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>

static const char usage[] =
	"Usage: ppbpf-demo-server --port PORT [--addr ADDR] [--count N] [--reply TEXT]\n"
	"                         [--defer-accept] [--timeout MS] [--fallback-trust CIDR[,...]]\n"
	"\n"
	"Serve TCP connections that start with a PROXY header (consumed by\n"
	"ppbpf_accept), print one JSON line per connection to stdout with the\n"
	"original client and the TLVs, read the request, reply, close.\n"
	"\n"
	"  -p, --port PORT       port to listen on\n"
	"  -a, --addr ADDR       address to listen on (default 127.0.0.1; :: for dual stack)\n"
	"  -n, --count N         exit after N connections (default: run until killed)\n"
	"  -r, --reply TEXT      what to answer (default \"hello from ppbpf\\n\")\n"
	"  -d, --defer-accept    set TCP_DEFER_ACCEPT on the listener\n"
	"  -t, --timeout MS      wait for a header at most this long (default 3000)\n"
	"  -f, --fallback-trust CIDR[,...]\n"
	"                        where ppbpf is not attached, parse headers in userspace,\n"
	"                        from these sources only (default: $PPBPF_FALLBACK_TRUST;\n"
	"                        unset, headers are not honoured there)\n"
	"\n"
	"Example:\n"
	"  ppbpf-demo-server --port 8080 --count 1\n";

struct server {
	const char *addr, *reply, *fallback_trust;
	int port, count, defer, timeout;
};

static int listen_on(const struct server *s)
{
	struct sockaddr_storage ss = {};
	socklen_t len;
	int one = 1, fd, af;

	if (inet_pton(AF_INET, s->addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		af = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((unsigned short)s->port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, s->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		af = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((unsigned short)s->port);
		len = sizeof(struct sockaddr_in6);
	} else {
		fprintf(stderr, "ppbpf-demo-server: not an address: %s\n", s->addr);
		return -1;
	}
	ss.ss_family = (sa_family_t)af;
	fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (s->defer && setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &s->timeout, sizeof(int))) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 512)) {
		perror("ppbpf-demo-server: failed to listen");
		return -1;
	}
	return fd;
}

static void endpoint_text(const struct sockaddr *sa, char *out, size_t cap)
{
	char txt[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, txt, sizeof(txt));
		snprintf(out, cap, "%s:%u", txt, ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, txt, sizeof(txt));
		snprintf(out, cap, "[%s]:%u", txt, ntohs(in6->sin6_port));
	}
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void put_json_string(const void *data, size_t n)
{
	const unsigned char *p = data;

	putchar('"');
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			printf("\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			printf("\\u%04x", p[i]);
		else
			putchar(p[i]);
	}
	putchar('"');
}

/* ,"key": — every member after the object's first opens this way. */
static void put_key(const char *key)
{
	printf(",\"%s\":", key);
}

static void print_tlvs(const void *tlvs, size_t len)
{
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;
	const char *sep = "";

	putchar('[');
	ppbpf_tlv_iter_init_raw(&it, tlvs, len);
	while (ppbpf_tlv_next(&it, &t) > 0) {
		int printable = 1;

		printf("%s{\"type\":%u", sep, t.type);
		sep = ",";
		if (ppbpf_tlv_name(t.type)) {
			put_key("name");
			put_json_string(ppbpf_tlv_name(t.type), strlen(ppbpf_tlv_name(t.type)));
		}
		put_key("hex");
		putchar('"');
		for (unsigned int i = 0; i < t.len; i++)
			printf("%02x", t.value[i]);
		putchar('"');
		for (unsigned int i = 0; i < t.len; i++)
			printable &= t.value[i] >= 0x20 && t.value[i] < 0x7f;
		if (printable && t.type != PPBPF_TLV_CRC32C) {
			put_key("text");
			put_json_string(t.value, t.len);
		}
		putchar('}');
	}
	putchar(']');
}

/* The first line (or first bytes) of the request, waiting at most 2 s. */
static ssize_t read_request(int fd, char *buf, size_t cap)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t n = 0;

	while (n < cap && poll(&p, 1, 2000) == 1) {
		ssize_t r = recv(fd, buf + n, cap - n, 0);

		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(buf, '\n', n))
			break;
	}
	return (ssize_t)n;
}

static const char *mode_of(const struct ppbpf_accept_stats *a, const struct ppbpf_accept_stats *b)
{
	if (b->kernel != a->kernel)
		return "kernel";
	return b->userspace != a->userspace ? "userspace" : "plain";
}

static void serve_one(int fd, int n, const struct sockaddr *orig, const struct ppbpf_info *info,
		      const unsigned char *tlvs, size_t tlv_len, const char *mode, const char *reply)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char txt[80], req[512];
	ssize_t rn = read_request(fd, req, sizeof(req));

	printf("{\"conn\":%d", n);
	put_key("mode");
	put_json_string(mode, strlen(mode));
	if (!getpeername(fd, (struct sockaddr *)&peer, &plen)) {
		endpoint_text((struct sockaddr *)&peer, txt, sizeof(txt));
		put_key("getpeername");
		put_json_string(txt, strlen(txt));
	}
	endpoint_text(orig, txt, sizeof(txt));
	put_key("client");
	put_json_string(txt, strlen(txt));
	if (info->state == PPBPF_STATE_DONE) {
		int af = ppbpf_family_af(info->family);

		printf(",\"version\":%u,\"command\":\"%s\",\"family\":\"%s\"", info->version,
		       info->command == PPBPF_CMD_PROXY ? "PROXY" : "LOCAL",
		       ppbpf_family_name(info->family) ? ppbpf_family_name(info->family) : "?");
		if (af == AF_INET || af == AF_INET6) {
			char a[PPBPF_ADDRSTRLEN];

			ppbpf_format_ip(af, info->dst_addr, a, sizeof(a));
			snprintf(txt, sizeof(txt), af == AF_INET ? "%s:%u" : "[%s]:%u", a, info->dst_port);
			put_key("dst");
			put_json_string(txt, strlen(txt));
		}
		printf(",\"header_len\":%u", info->header_len);
		put_key("tlvs");
		print_tlvs(tlvs, tlv_len);
	}
	put_key("request");
	put_json_string(req, rn > 0 ? (size_t)rn : 0);
	printf("}\n");
	fflush(stdout);
	send(fd, reply, strlen(reply), MSG_NOSIGNAL);
	close(fd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },  { "addr", required_argument, NULL, 'a' },
		{ "count", required_argument, NULL, 'n' }, { "reply", required_argument, NULL, 'r' },
		{ "defer-accept", no_argument, NULL, 'd' }, { "timeout", required_argument, NULL, 't' },
		{ "fallback-trust", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },        { 0 },
	};
	struct server s = { .addr = "127.0.0.1", .reply = "hello from ppbpf\n", .timeout = 3000 };
	int c, lfd;

	while ((c = getopt_long(argc, argv, "p:a:n:r:dt:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': s.port = atoi(optarg); break;
		case 'a': s.addr = optarg; break;
		case 'n': s.count = atoi(optarg); break;
		case 'r': s.reply = optarg; break;
		case 'd': s.defer = 1; break;
		case 't': s.timeout = atoi(optarg); break;
		case 'f': s.fallback_trust = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (s.port <= 0 || s.port > 65535) {
		fputs(usage, stderr);
		return 2;
	}
	lfd = listen_on(&s);
	if (lfd < 0)
		return 1;
	for (int n = 1; !s.count || n <= s.count; n++) {
		unsigned char tlvs[PPBPF_TLV_MAX];
		struct ppbpf_info info;
		struct ppbpf_accept_opts o = { .timeout_ms = s.timeout, .info = &info, .tlvs = tlvs,
					       .tlvs_cap = sizeof(tlvs), .fallback_trust = s.fallback_trust };
		struct ppbpf_accept_stats before, after;
		struct sockaddr_storage orig;
		socklen_t olen = sizeof(orig);
		int fd;

		ppbpf_accept_stats(&before);
		fd = ppbpf_accept_opts(lfd, (struct sockaddr *)&orig, &olen, SOCK_CLOEXEC, &o);
		if (fd < 0) {
			perror("ppbpf-demo-server: accept failed");
			return 1;
		}
		ppbpf_accept_stats(&after);
		serve_one(fd, n, (struct sockaddr *)&orig, &info, tlvs, o.tlvs_len, mode_of(&before, &after), s.reply);
	}
	close(lfd);
	return 0;
}
