// SPDX-License-Identifier: MIT
/*
 * The parser self-test run before every attach: a few headers, chosen to
 * cover each check of the parser (the TLV walk's above all), parsed by the
 * kernel's copy of the parser (the ppbpf_selftest program) and by
 * userspace's. They must agree exactly. A verifier that removes a live
 * branch as dead code loads the programs without a word; this is how it
 * shows (6.1 did, before the TLV walk's state was made opaque to it).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ppbpf/ppbpf.h>
#include "ppbpf.skel.h"
#include "selftest.h"

/* Longest input of the self-test. */
#define INPUT_MAX 512

/* One input of the self-test. */
struct input {
	const char *name;
	__u8 bytes[INPUT_MAX];
	__u32 len;
};

/* A v2 TCP4 header with these TLVs (and a CRC32C TLV appended with crc). */
static __u32 build_v2(__u8 *out, __u8 command, const struct ppbpf_tlv *tlvs, unsigned int n, bool crc)
{
	struct ppbpf_build b = { .version = 2, .command = command, .family = PPBPF_FAM_TCP4,
				 .src_port = 51000, .dst_port = 443, .tlvs = tlvs, .n_tlvs = n,
				 .flags = crc ? PPBPF_BUILD_CRC32C : 0 };
	int len;

	inet_pton(AF_INET, "192.0.2.1", b.src_addr);
	inet_pton(AF_INET, "198.51.100.2", b.dst_addr);
	len = ppbpf_build(&b, out, INPUT_MAX);
	return len > 0 ? (__u32)len : 0;
}

static void add_text(struct input *in, int *n, const char *name, const char *text)
{
	in[*n].name = name;
	in[*n].len = (__u32)strlen(text);
	memcpy(in[*n].bytes, text, in[*n].len);
	(*n)++;
}

static void add_v2(struct input *in, int *n, const char *name, __u8 command, const struct ppbpf_tlv *tlvs,
		   unsigned int nt, bool crc)
{
	in[*n].name = name;
	in[*n].len = build_v2(in[*n].bytes, command, tlvs, nt, crc);
	(*n)++;
}

/* The inputs; returns how many. */
static int make_inputs(struct input *in)
{
	static const __u8 ssl_ok[] = { 0x01, 0, 0, 0, 0, 0x21, 0, 3, 'T', 'L', 'S', 0x22, 0, 2, 'c', 'n' };
	static const __u8 ssl_overrun[] = { 0x01, 0, 0, 0, 0, 0x21, 0, 5, 'T', 'L', 'S' };
	static const __u8 crc_zero[4];
	static __u8 long_id[PPBPF_UNIQUE_ID_MAX + 1];
	const struct ppbpf_tlv authority = { PPBPF_TLV_AUTHORITY, 11, (const __u8 *)"example.com" };
	const struct ppbpf_tlv ssl[] = { { PPBPF_TLV_SSL, sizeof(ssl_ok), ssl_ok }, authority };
	const struct ppbpf_tlv bad_ssl[] = { { PPBPF_TLV_SSL, sizeof(ssl_overrun), ssl_overrun } };
	const struct ppbpf_tlv crc_twice[] = { { PPBPF_TLV_CRC32C, 4, crc_zero } };
	const struct ppbpf_tlv too_long[] = { { PPBPF_TLV_UNIQUE_ID, sizeof(long_id), long_id } };
	int n = 0;

	add_text(in, &n, "v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n");
	add_text(in, &n, "v1 TCP6", "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 1 65535\r\n");
	add_text(in, &n, "v1 UNKNOWN", "PROXY UNKNOWN ignored\r\n");
	add_text(in, &n, "v1 leading zero", "PROXY TCP4 192.0.2.1 198.51.100.2 051000 443\r\n");
	add_text(in, &n, "v1 double space", "PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n");
	add_v2(in, &n, "v2 AUTHORITY + CRC32C", PPBPF_CMD_PROXY, &authority, 1, true);
	add_v2(in, &n, "v2 CRC32C mismatch", PPBPF_CMD_PROXY, &authority, 1, true);
	in[n - 1].bytes[in[n - 1].len - 1] ^= 1;
	add_v2(in, &n, "v2 CRC32C twice", PPBPF_CMD_PROXY, crc_twice, 1, true);
	add_v2(in, &n, "v2 SSL sub-TLVs, then AUTHORITY", PPBPF_CMD_PROXY, ssl, 2, true);
	add_v2(in, &n, "v2 SSL sub-TLV overrun", PPBPF_CMD_PROXY, bad_ssl, 1, false);
	add_v2(in, &n, "v2 UNIQUE_ID too long", PPBPF_CMD_PROXY, too_long, 1, false);
	add_v2(in, &n, "v2 TLV past the end", PPBPF_CMD_PROXY, &authority, 1, false);
	in[n - 1].bytes[PPBPF_V2_FIXED_LEN + PPBPF_V2_ADDR_INET + 2]++; /* the TLV's length, low byte */
	add_v2(in, &n, "v2 LOCAL with TLVs", PPBPF_CMD_LOCAL, ssl, 2, true);
	return n;
}

/* The kernel's answer for buf[0, len). 0, or -errno if the program could not run. */
static int kernel_parse(struct ppbpf_bpf *skel, const __u8 *buf, __u32 len, int *rc, struct ppbpf_hdr *h)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);

	memcpy(skel->bss->selftest_in.data, buf, len);
	skel->bss->selftest_len = len;
	skel->bss->selftest_max = PPBPF_BPF_BUF_SIZE;
	skel->bss->selftest_rc = 0x7fffffff;
	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.ppbpf_selftest), &opts))
		return -errno;
	*rc = skel->bss->selftest_rc;
	memcpy(h, &skel->bss->selftest_hdr, sizeof(*h));
	return 0;
}

/* Does the kernel answer as userspace for buf[0, len)? Says how not, once. */
static int agree(struct ppbpf_bpf *skel, const char *name, const __u8 *buf, __u32 len, int *reported)
{
	struct ppbpf_hdr hu, hk;
	int ru, rk = 0, err;

	ru = ppbpf_parse_max(buf, len, PPBPF_BPF_BUF_SIZE, &hu);
	err = kernel_parse(skel, buf, len, &rk, &hk);
	if (err)
		return err;
	if (ru == rk && !memcmp(&hu, &hk, sizeof(hu)))
		return 0;
	if (!(*reported)++)
		fprintf(stderr, "ppbpf: parser self-test: \"%s\" (%u bytes): kernel %s, userspace %s%s\n", name, len,
			ppbpf_errname(rk) ? ppbpf_errname(rk) : "ok", ppbpf_errname(ru) ? ppbpf_errname(ru) : "ok",
			ru == rk ? ", the parsed fields differ" : "");
	return 1;
}

int selftest_parser(struct ppbpf_bpf *skel, int *n_inputs)
{
	static struct input in[16];
	int n = make_inputs(in), reported = 0, wrong = 0, total = 0;

	for (int i = 0; i < n; i++) {
		/* the whole header, and its prefixes: each must be "incomplete" */
		for (__u32 len = 0; len <= in[i].len; len++) {
			int r = agree(skel, in[i].name, in[i].bytes, len, &reported);

			if (r < 0) {
				fprintf(stderr, "ppbpf: failed to run the parser self-test: %s\n", strerror(-r));
				return r;
			}
			wrong += r;
			total++;
		}
	}
	*n_inputs = total;
	if (wrong) {
		fprintf(stderr, "ppbpf: the kernel's parser gives wrong answers on this kernel (%d of %d self-test "
				"inputs differ from userspace): not attaching\n", wrong, total);
		return -EPROTO;
	}
	return 0;
}
