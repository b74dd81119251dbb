// SPDX-License-Identifier: MIT
/*
 * Who is really behind a connection? ppbpf_get() answers for any socket of a
 * cgroup where ppbpf is attached, unprivileged, with no map fds.
 *
 *   cc -o whois whois.c $(pkg-config --cflags --libs ppbpf)
 *   ./whois PORT     accept one connection on 127.0.0.1:PORT, wait for the
 *                    kernel's verdict on its header, print the original client
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct ppbpf_info info;
	char src[PPBPF_ADDRSTRLEN];
	int one = 1, lfd, fd, rc;

	if (argc != 2)
		return fprintf(stderr, "usage: %s PORT\n", argv[0]), 2;
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1))
		return perror("listen"), 1;
	printf("listening\n");
	fflush(stdout);
	fd = accept(lfd, NULL, NULL);
	rc = fd < 0 ? -1 : ppbpf_wait(fd, 3000, &info); /* the header judged (or not tracked: an error) */
	if (rc)
		return fprintf(stderr, "no record: %s\n", strerror(rc < 0 ? -rc : 1)), 1;
	if (info.state != PPBPF_STATE_DONE ||
	    ppbpf_format_ip(ppbpf_family_af(info.family), info.src_addr, src, sizeof(src)) < 0)
		return printf("header state %u: no original client\n", info.state), 1;
	printf("client %s:%u (PROXY v%u, cookie %llu)\n", src, info.src_port, info.version,
	       (unsigned long long)info.cookie);
	close(fd);
	close(lfd);
	return 0;
}
