// SPDX-License-Identifier: MIT
/*
 * Who is really behind a connection? ppbpf_get() answers for any socket of a
 * cgroup where ppbpf is attached, unprivileged, with no map fds.
 *
 *   cc -o whois whois.c $(pkg-config --cflags --libs ppbpf)
 *   ./whois PORT     accept one connection on 127.0.0.1:PORT, wait for the
 *                    kernel's verdict on its header, print the original client
 *                    and the header's TLVs as whois.py does (the cloud
 *                    balancers' ids decoded by libppbpf)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>

/* v as text if it is one word of printable ASCII (into out, cap > len), else NULL. */
static const char *text(const __u8 *v, size_t len, char *out, size_t cap)
{
	if (!len || len >= cap)
		return NULL;
	for (size_t i = 0; i < len; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			return NULL;
	memcpy(out, v, len);
	out[len] = '\0';
	return out;
}

/* One word per TLV: its name (or 0xNN), with =VALUE for the text ones and the cloud balancers' ids. */
static void print_tlvs(const void *tlvs, size_t len)
{
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;
	char value[PPBPF_TLV_MAX + 1];
	const char *v;
	__u64 psc;
	__u32 link;
	int rc;

	ppbpf_tlv_iter_init_raw(&it, tlvs, len);
	while ((rc = ppbpf_tlv_next(&it, &t)) > 0) {
		v = NULL;
		if (t.type == PPBPF_TLV_ALPN || t.type == PPBPF_TLV_AUTHORITY || t.type == PPBPF_TLV_UNIQUE_ID)
			v = text(t.value, t.len, value, sizeof(value));
		else if (ppbpf_aws_vpce_id(&t, value, sizeof(value)) >= 0)
			v = text((const __u8 *)value, strlen(value), value, sizeof(value));
		else if (!ppbpf_gcp_psc_id(&t, &psc)) {
			snprintf(value, sizeof(value), "%llu", (unsigned long long)psc);
			v = value;
		} else if (!ppbpf_azure_link_id(&t, &link)) {
			snprintf(value, sizeof(value), "%u", link);
			v = value;
		}
		if (ppbpf_tlv_name(t.type))
			printf(" %s", ppbpf_tlv_name(t.type));
		else
			printf(" 0x%02x", t.type);
		if (v)
			printf("=%s", v);
	}
	if (rc < 0)
		printf(" (malformed)");
}

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
	if (info.tlv_stored) {
		unsigned char tlvs[PPBPF_TLV_MAX];

		rc = ppbpf_get_tlvs(fd, tlvs, sizeof(tlvs)); /* the bytes, without PPBPF_TLVS's count */
		if (rc < 0)
			return fprintf(stderr, "no TLVs: %s\n", strerror(-rc)), 1;
		printf("tlvs");
		print_tlvs(tlvs, (size_t)rc);
		printf("%s\n", info.flags & PPBPF_INFO_TLV_TRUNCATED ? " (truncated)" : "");
	}
	close(fd);
	close(lfd);
	return 0;
}
