// SPDX-License-Identifier: MIT
/*
 * ppbpf-demo-client: connect from a chosen source address, optionally send
 * a PROXY header of our own, send a request, print what we are (JSON) and
 * the reply. The demo and the interop tests use it as "the real client".
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>

static const char usage[] =
	"Usage: ppbpf-demo-client --connect ADDR:PORT [--bind ADDR] [--send TEXT]\n"
	"                         [--proxy-v2 [--authority NAME]]\n"
	"\n"
	"Connect (from --bind if given), optionally send a v2 PROXY header that\n"
	"names this connection's own endpoints (as a first balancer would), send\n"
	"TEXT, read the reply until the server closes. Prints one JSON line:\n"
	"  {\"local\":\"127.0.0.2:40000\",\"reply\":\"...\"}\n"
	"\n"
	"Example:\n"
	"  ppbpf-demo-client --bind 127.0.0.2 --connect 127.0.0.1:8080 --send 'GET /\\n'\n";

static int split_endpoint(const char *text, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(text, ':');

	if (!colon || (size_t)(colon - text) >= sizeof(host))
		return -1;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((unsigned short)atoi(colon + 1));
	return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

/* A v2 header naming this socket's endpoints, with an AUTHORITY TLV if given. */
static int own_header(int fd, const char *authority, unsigned char *out, size_t cap)
{
	struct sockaddr_in me, peer;
	socklen_t l1 = sizeof(me), l2 = sizeof(peer);
	struct ppbpf_tlv tlv = { PPBPF_TLV_AUTHORITY, 0, NULL };
	struct ppbpf_build b = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4 };

	if (getsockname(fd, (struct sockaddr *)&me, &l1) || getpeername(fd, (struct sockaddr *)&peer, &l2))
		return -1;
	memcpy(b.src_addr, &me.sin_addr, 4);
	memcpy(b.dst_addr, &peer.sin_addr, 4);
	b.src_port = ntohs(me.sin_port);
	b.dst_port = ntohs(peer.sin_port);
	if (authority) {
		tlv.len = (__u16)strlen(authority);
		tlv.value = (const __u8 *)authority;
		b.tlvs = &tlv;
		b.n_tlvs = 1;
	}
	return ppbpf_build(&b, out, cap);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' }, { "bind", required_argument, NULL, 'b' },
		{ "send", required_argument, NULL, 's' },    { "proxy-v2", no_argument, NULL, 'P' },
		{ "authority", required_argument, NULL, 'A' }, { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *to = NULL, *from = NULL, *text = "hello\n", *authority = NULL;
	struct sockaddr_in dst, src = { .sin_family = AF_INET };
	char reply[4096], addr[INET_ADDRSTRLEN];
	unsigned char hdr[512];
	struct sockaddr_in me;
	socklen_t mlen = sizeof(me);
	size_t n = 0;
	int c, fd, proxy = 0;

	while ((c = getopt_long(argc, argv, "c:b:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': to = optarg; break;
		case 'b': from = optarg; break;
		case 's': text = optarg; break;
		case 'P': proxy = 1; break;
		case 'A': authority = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (!to || split_endpoint(to, &dst) || (from && inet_pton(AF_INET, from, &src.sin_addr) != 1)) {
		fputs(usage, stderr);
		return 2;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || (from && bind(fd, (struct sockaddr *)&src, sizeof(src))) ||
	    connect(fd, (struct sockaddr *)&dst, sizeof(dst))) {
		perror("ppbpf-demo-client: failed to connect");
		return 1;
	}
	if (proxy) {
		int len = own_header(fd, authority, hdr, sizeof(hdr));

		if (len < 0 || send(fd, hdr, (size_t)len, MSG_NOSIGNAL) != len) {
			perror("ppbpf-demo-client: failed to send the header");
			return 1;
		}
	}
	if (send(fd, text, strlen(text), MSG_NOSIGNAL) < 0) {
		perror("ppbpf-demo-client: failed to send");
		return 1;
	}
	for (struct pollfd p = { .fd = fd, .events = POLLIN }; n < sizeof(reply) - 1 && poll(&p, 1, 5000) == 1;) {
		ssize_t r = recv(fd, reply + n, sizeof(reply) - 1 - n, 0);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	reply[n] = '\0';
	getsockname(fd, (struct sockaddr *)&me, &mlen);
	inet_ntop(AF_INET, &me.sin_addr, addr, sizeof(addr));
	printf("{\"local\":\"%s:%u\",\"reply_bytes\":%zu}\n", addr, ntohs(me.sin_port), n);
	close(fd);
	return n ? 0 : 1;
}
